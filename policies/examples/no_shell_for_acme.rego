# Example extension: tenant acme may not use shell capabilities, wherever one
# is named: FindAgents, a PutPlaybook step, a step the executor dispatches.
package agentmesh.ext.no_shell_for_acme

import data.agentmesh.authz

deny contains msg if {
	authz.acting_tenant == "acme"
	some c in authz.capabilities_used
	startswith(c, "shell.")
	msg := concat("", ["tenant acme may not use ", c])
}
