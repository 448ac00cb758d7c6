"""The local stack's moto under the writes of N grants: its RSS and the time of one
transaction as the tables grow (issue #19: moto's TransactWriteItems used to copy
every table it touched, stream records included, on every call).

Run by scripts/bench with the local stack's virtualenv python, against a moto of its
own started with the launcher `ticketbound local up` writes (so the figures are the
shipped launcher's, and the local stack's own moto is left alone):

    python3 bench/moto_memory.py <launcher.py> <grants>

Each grant makes the writes ticketbound's functions make for one lifecycle, in their
transaction shapes: created (grant, expiry trigger, delivery, two audit events), the
same delivery again (cancelled by its condition, rolled back), provisioned (grant
updated with two audit events), revoked (grant updated, trigger deleted, audit event).
Items carry about 2 KB, as grant records do.
"""

import json, os, socket, subprocess, sys, time

import boto3, botocore

launcher, grants = sys.argv[1], int(sys.argv[2])
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
moto = subprocess.Popen(
    [sys.executable, launcher, "-H", "127.0.0.1", "-p", str(port)],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-west-1",
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    for _ in range(100):
        try:
            ddb.list_tables()
            break
        except botocore.exceptions.EndpointConnectionError:
            time.sleep(0.1)
    def table(name, pk, sk, sk_type):
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": pk, "AttributeType": "S"}, {"AttributeName": sk, "AttributeType": sk_type}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    table("grants", "pk", "sk", "S")
    table("audit", "grant_id", "seq", "N")
    pad = {"S": "x" * 2000}
    def rss_mb():
        with open(f"/proc/{moto.pid}/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0]) / 1024
    def put(table, item, cond=None):
        p = {"TableName": table, "Item": item}
        if cond:
            p["ConditionExpression"] = cond
        return {"Put": p}
    def audit(g, seq):
        return put("audit", {"grant_id": {"S": g}, "seq": {"N": str(seq)}, "details": pad}, "attribute_not_exists(seq)")
    def update(g, version):
        return {"Update": {"TableName": "grants", "Key": {"pk": {"S": f"GRANT#{g}"}, "sk": {"S": "GRANT"}},
                           "UpdateExpression": "SET version = :next, body = :body",
                           "ConditionExpression": "version = :read",
                           "ExpressionAttributeValues": {":read": {"N": str(version)}, ":next": {"N": str(version + 1)}, ":body": pad}}}
    before = rss_mb()
    samples, rows = [], []
    started = time.time()
    for i in range(grants):
        g = f"01BENCH{i:019d}"
        created = [put("grants", {"pk": {"S": f"GRANT#{g}"}, "sk": {"S": "GRANT"}, "version": {"N": "1"}, "body": pad}, "attribute_not_exists(pk)"),
                   put("grants", {"pk": {"S": f"GRANT#{g}"}, "sk": {"S": "EXPIRY"}}, "attribute_not_exists(pk)"),
                   put("grants", {"pk": {"S": f"DELIVERY#jira#{g}"}, "sk": {"S": "DELIVERY"}}, "attribute_not_exists(pk)"),
                   audit(g, 1), audit(g, 2)]
        t = time.perf_counter()
        ddb.transact_write_items(TransactItems=created)
        samples.append(time.perf_counter() - t)
        try:
            ddb.transact_write_items(TransactItems=created)
            raise SystemExit("a repeated creation was not cancelled")
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] != "TransactionCanceledException":
                raise
        ddb.transact_write_items(TransactItems=[update(g, 1), audit(g, 3), audit(g, 4)])
        ddb.transact_write_items(TransactItems=[
            update(g, 2),
            {"Delete": {"TableName": "grants", "Key": {"pk": {"S": f"GRANT#{g}"}, "sk": {"S": "EXPIRY"}}}},
            audit(g, 5)])
        if (i + 1) % max(1, grants // 5) == 0:
            recent = samples[-50:]
            rows.append({"grants": i + 1, "rss_mb": round(rss_mb(), 1),
                         "create_transaction_ms": round(1000 * sum(recent) / len(recent), 2)})
            print(f"moto memory: {i + 1:>5} grants, RSS {rows[-1]['rss_mb']:>7.1f} MB, "
                  f"one creating transaction {rows[-1]['create_transaction_ms']:.2f} ms", flush=True)
    out = {"grants": grants, "rss_before_mb": round(before, 1), "rows": rows,
           "seconds": round(time.time() - started, 1)}
    os.makedirs("target/bench", exist_ok=True)
    with open("target/bench/moto_memory.json", "w") as f:
        json.dump(out, f, indent=2)
    print(f"moto memory: RSS {before:.1f} MB before, {rows[-1]['rss_mb']:.1f} MB after {grants} grants "
          f"({out['seconds']} s); target/bench/moto_memory.json")
finally:
    moto.terminate()
    moto.wait()
