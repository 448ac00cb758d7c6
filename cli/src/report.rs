//! `ticketbound evidence <ticket> --format html`: the evidence as one self-contained
//! HTML page (no script, no external asset: it opens from a mail attachment or an
//! archive years later), for the people who read it rather than parse it.
//!
//! For each grant: a timeline drawn as SVG (requested, approved, issued, each
//! rotation, the not-after time, revoked, and when the credential was proven dead at
//! the target), its audit chain, the live state and the ticket's notes; then the
//! verdict, the signed log's verification, and the controls the evidence supports.
//! Every piece of text from the record is escaped: a ticket field or an ITSM note
//! cannot inject markup.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::evidence::{Evidence, GrantEvidence, Mark, Milestone};

/// The colours of the timeline's marks; the browser test looks for them.
pub fn colour(m: Milestone) -> &'static str {
    match m {
        Milestone::Requested => "#6b7280",
        Milestone::Approved => "#2563eb",
        Milestone::Denied => "#9f1239",
        Milestone::Issued => "#16a34a",
        Milestone::Rotated => "#7c3aed",
        Milestone::NotAfter => "#ea580c",
        Milestone::Revoked => "#dc2626",
        Milestone::ProvenDead => "#831843",
        Milestone::Failed => "#d97706",
    }
}

/// The verdict badge's colour when everything holds, and when something does not.
pub const VERDICT_GOOD: &str = "#0f766e";
pub const VERDICT_BAD: &str = "#b91c1c";
/// Consistent as far as the tables go, with the signed log not checked (no `--key`).
pub const VERDICT_UNCHECKED: &str = "#57534e";

const WIDTH: f64 = 960.0;
const MARGIN: f64 = 48.0;
const AXIS_Y: f64 = 40.0;
const ROW: f64 = 18.0;
/// The room the axis's break takes, when the not-after time is far after the rest.
const BREAK: f64 = 120.0;
/// About how wide a character of the labels' 12 px font is.
const CHAR_WIDTH: f64 = 6.6;

/// Escapes text for HTML content and attribute values (five characters, written out
/// here rather than taken from a crate for so little).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration in the largest unit that says it.
fn humane(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s < 120 {
        format!("{s} s")
    } else if s < 7_200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86_400)
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The page.
pub fn render(e: &Evidence) -> String {
    // Green only when the signed log verified too: the tables alone are what an
    // insider could have rewritten.
    let consistent = e.verdict == crate::evidence::CONSISTENT;
    let anchored = e.signed_log.as_ref().is_some_and(|l| l.verified);
    let (badge, verdict) = match (consistent, anchored) {
        (true, true) => (VERDICT_GOOD, e.verdict.to_owned()),
        (true, false) => (
            VERDICT_UNCHECKED,
            format!(
                "{} (the tables only: the signed log was not checked)",
                e.verdict
            ),
        ),
        (false, _) => (VERDICT_BAD, e.verdict.to_owned()),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evidence for {ticket}</title>
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; margin: 24px auto; max-width: 1040px; padding: 0 16px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }}
h3 {{ font-size: 15px; margin: 16px 0 6px; }}
.meta {{ color: #4b5563; }}
#verdict {{ display: inline-block; color: #fff; font-weight: 600; font-size: 16px; padding: 8px 16px; border-radius: 6px; margin: 12px 0; background: {badge}; }}
.facts {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }}
.facts dt {{ color: #4b5563; }} .facts dd {{ margin: 0; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
th, td {{ text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; }}
td:last-child {{ overflow-wrap: anywhere; }} td:nth-child(2) {{ white-space: nowrap; }}
th {{ background: #f9fafb; }}
.ok {{ color: #166534; font-weight: 600; }} .bad {{ color: #991b1b; font-weight: 600; }}
svg.timeline {{ width: 100%; height: auto; background: #fcfcfd; border: 1px solid #e5e7eb; border-radius: 6px; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #374151; }}
blockquote {{ margin: 6px 0; padding: 6px 10px; border-left: 3px solid #d1d5db; background: #f9fafb; white-space: pre-wrap; font-size: 12px; }}
</style></head><body>
<h1>Evidence for {ticket}</h1>
<div class="meta">Generated {generated} by ticketbound.</div>
<div id="verdict">Verdict: {verdict}</div>
"#,
        ticket = esc(&e.ticket),
        generated = time(e.generated_at),
        verdict = esc(&verdict),
    );
    signed_log(&mut h, e);
    for g in &e.grants {
        grant(&mut h, g);
    }
    let _ = write!(
        h,
        "<h2>Controls this evidence supports</h2>\n<table><tr><th>framework</th><th>control</th><th>evidenced by</th></tr>\n"
    );
    for c in e.controls {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{} {}</td><td>{}</td></tr>",
            esc(c.framework),
            esc(c.id),
            esc(c.name),
            esc(c.evidenced_by)
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

fn signed_log(h: &mut String, e: &Evidence) {
    h.push_str("<h2>Signed log</h2>\n<p id=\"signed-log\">");
    match &e.signed_log {
        Some(log) if log.verified => {
            let _ = write!(
                h,
                "<span class=\"ok\">Verified.</span> {}",
                esc(&log.summary)
            );
        }
        Some(log) => {
            let _ = write!(
                h,
                "<span class=\"bad\">Does not verify:</span> {}",
                esc(&log.summary)
            );
        }
        None => h.push_str(
            "Not checked: no pinned key was given (<code>--key</code>). Without it this page \
             shows what the tables hold, which an insider could have rewritten.",
        ),
    }
    h.push_str("</p>\n");
}

fn grant(h: &mut String, g: &GrantEvidence) {
    let _ = write!(
        h,
        r#"<h2>Grant {id} <span class="meta">({state})</span></h2>
<dl class="facts"><dt>identity</dt><dd>{identity}, owner {owner}</dd>
<dt>target</dt><dd>{target}, scope {scope}</dd>
<dt>not after</dt><dd>{not_after}</dd></dl>
"#,
        id = esc(&g.grant_id),
        state = esc(&format!("{:?}", g.state).to_lowercase()),
        identity = esc(&g.identity),
        owner = esc(&g.owner),
        target = esc(&g.target),
        scope = esc(&g.scope),
        not_after = time(g.not_after),
    );
    h.push_str("<h3>Timeline</h3>\n");
    timeline(h, &g.grant_id, &g.marks);
    h.push_str(
        "<table><tr><th>#</th><th>time (UTC)</th><th>step</th><th>by</th><th>what</th></tr>\n",
    );
    for s in &g.timeline {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.seq,
            s.at.format("%Y-%m-%d %H:%M:%S"),
            esc(&s.action.to_string()),
            esc(&s.actor),
            esc(&s.summary)
        );
    }
    h.push_str("</table>\n<h3>Audit chain</h3>\n<p>");
    match (&g.chain.head, &g.chain.problem) {
        (Some(head), _) => {
            let _ = write!(
                h,
                "<span class=\"ok\">Verified</span>: {} events, head <code>{}</code>.",
                g.chain.events,
                esc(head)
            );
        }
        (None, problem) => {
            let _ = write!(
                h,
                "<span class=\"bad\">Broken</span> at event #{}: {}.",
                g.chain.break_at_seq.unwrap_or_default(),
                esc(problem.as_deref().unwrap_or_default())
            );
        }
    }
    let _ = write!(
        h,
        "</p>\n<h3>Live state</h3>\n<p>Checked {}: secret {}, logins {}, a login works: {}. Expected: {}. {}</p>\n",
        time(g.live.checked_at),
        if g.live.secret_exists {
            "present"
        } else {
            "absent"
        },
        if g.live.logins.is_empty() {
            "none".to_owned()
        } else {
            esc(&g.live.logins.join(", "))
        },
        if g.live.can_log_in { "yes" } else { "no" },
        esc(g.live.expected),
        match &g.live.problem {
            None => "<span class=\"ok\">Consistent with the record.</span>".to_owned(),
            Some(p) => format!(
                "<span class=\"bad\">Contradicts the record: {}.</span>",
                esc(p)
            ),
        }
    );
    let _ = writeln!(
        h,
        "<h3>Notes the ticket received ({})</h3>",
        g.ticket_notes.len()
    );
    for note in &g.ticket_notes {
        let _ = writeln!(h, "<blockquote>{}</blockquote>", esc(note));
    }
    if !g.dead_letters.is_empty() {
        h.push_str("<p class=\"bad\">Write-backs that failed for good:</p><ul>");
        for d in &g.dead_letters {
            let _ = write!(h, "<li>{}</li>", esc(d));
        }
        h.push_str("</ul>\n");
    }
}

/// The timeline as SVG: one axis from the first mark to the last, a dot per mark
/// (a dashed line for the not-after time, a diamond for the proof at the target),
/// labels stacked in rows so that close marks stay readable.
fn timeline(h: &mut String, grant_id: &str, marks: &[Mark]) {
    let Some(first) = marks.iter().map(|m| m.at).min() else {
        h.push_str("<p>No events.</p>\n");
        return;
    };
    let last = marks.iter().map(|m| m.at).max().unwrap_or(first);
    // A grant ended early (withdrawn) has its not-after time hours after everything
    // else: drawn to scale, its events would be one blot. The axis then breaks, and
    // the not-after time stands at its end.
    let last_event = marks
        .iter()
        .filter(|m| m.milestone != Milestone::NotAfter)
        .map(|m| m.at)
        .max()
        .unwrap_or(first);
    let events_span = (last_event - first).num_milliseconds().max(1_000);
    let broken = (last - last_event).num_milliseconds() > 2 * events_span;
    let (scale_end, scale_last) = if broken {
        (WIDTH - MARGIN - BREAK, last_event)
    } else {
        (WIDTH - MARGIN, last)
    };
    let span = (scale_last - first).num_milliseconds().max(1) as f64;
    let x_of = |at: DateTime<Utc>| {
        if at > scale_last {
            WIDTH - MARGIN
        } else {
            MARGIN + (at - first).num_milliseconds() as f64 / span * (scale_end - MARGIN)
        }
    };
    // Each label takes the first row where it does not run into the one before.
    let mut sorted: Vec<&Mark> = marks.iter().collect();
    sorted.sort_by_key(|m| m.at);
    let mut row_ends: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for m in sorted {
        let x = x_of(m.at);
        let text = format!("{} {}", m.label, m.at.format("%H:%M:%S"));
        let width = text.chars().count() as f64 * CHAR_WIDTH;
        let left = (x - 6.0).min(WIDTH - width - 4.0);
        let row = row_ends
            .iter()
            .position(|end| *end < left)
            .unwrap_or(row_ends.len());
        if row == row_ends.len() {
            row_ends.push(0.0);
        }
        row_ends[row] = left + width + 8.0;
        placed.push((m, x, left, row, text));
    }
    let height = AXIS_Y + 30.0 + row_ends.len() as f64 * ROW + 10.0;
    let _ = write!(
        h,
        r##"<svg class="timeline" id="timeline-{id}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="timeline of grant {id}">
<line x1="{MARGIN}" y1="{AXIS_Y}" x2="{scale_end}" y2="{AXIS_Y}" stroke="#9ca3af" stroke-width="2"/>
<text x="{MARGIN}" y="16">{from}</text><text x="{x2}" y="16" text-anchor="end">{to}</text>
"##,
        id = esc(grant_id),
        x2 = WIDTH - MARGIN,
        from = time(first),
        to = time(last),
    );
    if broken {
        let gap = scale_end + BREAK / 2.0;
        let _ = writeln!(
            h,
            r##"<g class="axis-break"><line x1="{a}" y1="{AXIS_Y}" x2="{x2}" y2="{AXIS_Y}" stroke="#9ca3af" stroke-width="2"/><text x="{gap}" y="{ty}" text-anchor="middle">{later} later</text><line x1="{l1}" y1="{t}" x2="{l2}" y2="{b}" stroke="#9ca3af" stroke-width="2"/><line x1="{l3}" y1="{t}" x2="{l4}" y2="{b}" stroke="#9ca3af" stroke-width="2"/></g>"##,
            a = gap + 12.0,
            x2 = WIDTH - MARGIN,
            ty = AXIS_Y - 10.0,
            later = humane(last - last_event),
            l1 = gap - 10.0,
            l2 = gap - 4.0,
            l3 = gap + 4.0,
            l4 = gap + 10.0,
            t = AXIS_Y + 6.0,
            b = AXIS_Y - 6.0,
        );
    }
    for (m, x, left, row, text) in &placed {
        let fill = colour(m.milestone);
        let y = AXIS_Y + 30.0 + *row as f64 * ROW;
        let _ = write!(
            h,
            r#"<g class="mark {kind}"><title>{title}</title>"#,
            kind = m.milestone.as_class(),
            title = esc(&format!("{}: {}", m.label, time(m.at))),
        );
        match m.milestone {
            Milestone::NotAfter => {
                let _ = write!(
                    h,
                    r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="{fill}" stroke-width="4" stroke-dasharray="6 4"/>"#,
                    top = AXIS_Y - 16.0,
                    bottom = AXIS_Y + 16.0,
                );
            }
            Milestone::ProvenDead => {
                let _ = write!(
                    h,
                    r#"<rect x="{rx:.1}" y="{ry}" width="12" height="12" fill="{fill}" transform="rotate(45 {x:.1} {cy})"/>"#,
                    rx = x - 6.0,
                    ry = AXIS_Y + 14.0,
                    cy = AXIS_Y + 20.0,
                );
            }
            _ => {
                let _ = write!(
                    h,
                    r##"<circle cx="{x:.1}" cy="{AXIS_Y}" r="8" fill="{fill}" stroke="#fff" stroke-width="2"/>"##
                );
            }
        }
        let _ = writeln!(
            h,
            r##"<line x1="{x:.1}" y1="{a}" x2="{x:.1}" y2="{b}" stroke="#d1d5db"/><text x="{left:.1}" y="{y}">{text}</text></g>"##,
            a = AXIS_Y + 10.0,
            b = y - 11.0,
            text = esc(text),
        );
    }
    h.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_cannot_become_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn close_marks_take_rows_of_their_own_and_far_ones_share_one() {
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let mark = |s, milestone| Mark {
            at: at(s),
            milestone,
            label: "step".into(),
        };
        let marks = vec![
            mark(0, Milestone::Requested),
            mark(1, Milestone::Approved),
            mark(3600, Milestone::Revoked),
        ];
        let mut h = String::new();
        timeline(&mut h, "g", &marks);
        assert_eq!(h.matches("<circle").count(), 3, "{h}");
        // The first two are a second apart: two rows; the third shares the first.
        let ys: Vec<&str> = h
            .split("<text x=")
            .skip(3)
            .map(|t| t.split("y=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(ys, ["70", "88", "70"], "{h}");
    }

    #[test]
    fn a_not_after_time_far_past_the_end_breaks_the_axis() {
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let mark = |s, milestone| Mark {
            at: at(s),
            milestone,
            label: "step".into(),
        };
        let early = vec![
            mark(0, Milestone::Issued),
            mark(60, Milestone::Revoked),
            mark(8 * 3600, Milestone::NotAfter),
        ];
        let mut h = String::new();
        timeline(&mut h, "g", &early);
        assert!(h.contains("axis-break") && h.contains("7 h later"), "{h}");
        // The revocation is at the end of the scaled part, not squeezed at the start.
        assert!(
            h.contains(&format!("cx=\"{:.1}\"", WIDTH - MARGIN - BREAK)),
            "{h}"
        );
        let mut h = String::new();
        timeline(&mut h, "g", &early[..2]);
        assert!(!h.contains("axis-break"));
    }
}
