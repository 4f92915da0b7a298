# Example extension: only principals with the role payments.approver may
# submit goals of a kind under "payments.", and at most at priority 5.
package agentmesh.ext.payments_approvers

import data.agentmesh.authz

submit := "agentmesh.v1.ExecutorService/SubmitGoal"

deny contains msg if {
	input.method.full == submit
	startswith(input.resource.goal_kind, "payments.")
	not "payments.approver" in authz.effective_roles
	msg := concat("", ["goals of kind ", input.resource.goal_kind, " need the role payments.approver"])
}

deny contains "payments goals run at priority 5 or lower" if {
	input.method.full == submit
	startswith(input.resource.goal_kind, "payments.")
	input.request.priority > 5
}
