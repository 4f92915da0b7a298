# A rule on declared side effects: a step of a capability declared destructive
# is dispatched only for a principal holding the role tools.operator (roles are
# those the goal's principal had at submission). Copy into policies/ext/ to enable.
package agentmesh.ext.destructive_needs_operator

import data.agentmesh.authz

deny contains msg if {
	input.method.full == "agentmesh.v1.ExecutorService/DispatchStep"
	input.resource.side_effect == "destructive"
	not "tools.operator" in authz.principal_scopes
	msg := concat("", [input.resource.capability, " is destructive: the goal's principal needs the role tools.operator"])
}
