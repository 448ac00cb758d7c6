/*
 * ServiceNow → ticketbound: an "after update" business rule on change_request (copy it
 * for sc_req_item), condition:
 *     current.approval.changesTo('approved') || current.state.changesTo('4') || current.state.changesTo('3')
 *
 * It posts the record's fields (the names ticketbound's default ServiceNow mapping
 * reads; change TICKETBOUND_SERVICENOW_MAPPING if yours differ) to the intake, signed
 * with HMAC-SHA256 over "<timestamp>.<body>". The signing key lives in a password2
 * system property (x_tb.webhook_secret), the same value as the Secrets Manager secret
 * named by TICKETBOUND_SERVICENOW_SECRET_ID. GlideCertificateEncryption returns a
 * base64 MAC; the intake accepts base64 or hex after "v1=".
 *
 * Run it asynchronously (Advanced → When: async) so a slow network never holds the
 * user's transaction, and let the REST message's retry policy handle 429/503.
 */
(function executeRule(current, previous) {
    var approvers = [];
    var gr = new GlideRecord('sysapproval_approver');
    gr.addQuery('sysapproval', current.sys_id);
    gr.addQuery('state', 'approved');
    gr.query();
    while (gr.next()) {
        approvers.push({
            approver: {
                sys_id: gr.approver.toString(),
                user_name: gr.approver.user_name.toString(),
                email: gr.approver.email.toString()
            },
            state: gr.state.toString(),
            sys_updated_on: gr.sys_updated_on.toString()   // UTC, "YYYY-MM-DD HH:MM:SS"
        });
    }
    var payload = {
        sys_id: current.sys_id.toString(),
        number: current.number.toString(),
        sys_class_name: current.sys_class_name.toString(),
        state: current.state.toString(),
        approval: current.approval.toString(),
        sys_updated_on: current.sys_updated_on.toString(),
        sys_updated_by: current.sys_updated_by.toString(),
        requested_by: {
            sys_id: current.requested_by.toString(),
            user_name: current.requested_by.user_name.toString(),
            email: current.requested_by.email.toString()
        },
        start_date: current.start_date.toString(),
        end_date: current.end_date.toString(),
        u_nhi_kind: current.u_nhi_kind.toString(),
        u_nhi_name: current.u_nhi_name.toString(),
        u_nhi_owner: current.u_nhi_owner.toString(),
        u_workload_principal: current.u_workload_principal.toString(),
        u_target_system: current.u_target_system.toString(),
        u_connector: current.u_connector.toString(),
        u_environment: current.u_environment.toString(),
        u_scope: current.u_scope.toString(),
        u_not_after: current.u_not_after.toString(),
        justification: current.justification.toString(),
        u_revocation_trigger: current.u_revocation_trigger.toString(),
        u_rotation_hours: current.u_rotation_hours.toString(),
        approvers: approvers,
        instance: 'https://' + gs.getProperty('instance_name') + '.service-now.com'
    };
    var body = JSON.stringify(payload);
    var timestamp = Math.floor(new GlideDateTime().getNumericValue() / 1000).toString();
    var key = GlideStringUtil.base64Encode(gs.getProperty('x_tb.webhook_secret'));
    var mac = new GlideCertificateEncryption().generateMac(key, 'HmacSHA256', timestamp + '.' + body);

    var request = new sn_ws.RESTMessageV2();
    request.setEndpoint(gs.getProperty('x_tb.intake_url') + '/servicenow');
    request.setHttpMethod('post');
    request.setRequestHeader('Content-Type', 'application/json');
    request.setRequestHeader('X-Ticketbound-Timestamp', timestamp);
    request.setRequestHeader('X-Ticketbound-Signature', 'v1=' + mac);
    // The same delivery id on a retry lets ticketbound answer it as a duplicate.
    request.setRequestHeader('X-Ticketbound-Delivery', current.sys_id + '-' + current.sys_mod_count);
    request.setRequestBody(body);
    var response = request.execute();
    if (response.getStatusCode() >= 300) {
        gs.warn('ticketbound intake answered ' + response.getStatusCode() + ': ' + response.getBody());
    }
})(current, previous);
