package agentmesh.ext.payments_approvers_test

import data.agentmesh.authz
import data.agentmesh.ext.payments_approvers

approver_role := {"methods": []}

submit(roles, kind, priority) := {
	"peer": {"spiffe_id": "spiffe://agentmesh.local/ns/agentmesh/sa/gateway"},
	"principal": {"tenant_id": "acme", "subject": "wes", "roles": roles},
	"method": {"full": "agentmesh.v1.ExecutorService/SubmitGoal"},
	"resource": {"tenant_id": "acme", "goal_kind": kind},
	"request": {"tenant_id": "acme", "kind": kind, "priority": priority},
}

test_payments_need_an_approver if {
	i := submit(["goals.write"], "payments.wire", 0)
	payments_approvers.deny == {"goals of kind payments.wire need the role payments.approver"} with input as i
	d := authz.decision with input as i
	not d.allow
	contains(d.reason, "goals of kind payments.wire need the role payments.approver")
}

test_approver_may_submit_payments if {
	count(payments_approvers.deny) == 0 with input as submit(["goals.write", "payments.approver"], "payments.wire", 5)
		with data.agentmesh.config.roles["payments.approver"] as approver_role
}

test_payments_priority_is_capped if {
	i := submit(["goals.write", "payments.approver"], "payments.wire", 9)
	payments_approvers.deny == {"payments goals run at priority 5 or lower"} with input as i
		with data.agentmesh.config.roles["payments.approver"] as approver_role
}

test_other_kinds_unaffected if {
	count(payments_approvers.deny) == 0 with input as submit(["goals.write"], "summarize", 9)
}
