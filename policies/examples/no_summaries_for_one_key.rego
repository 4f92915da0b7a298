# Example extension: goals submitted with one API key may not run summaries,
# checked at every dispatch (the principal a goal acts for is kept with it and
# inherited by its child goals).
package agentmesh.ext.no_summaries_for_one_key

import data.agentmesh.authz

deny contains msg if {
	input.method.full == "agentmesh.v1.ExecutorService/DispatchStep"
	input.principal.subject == "key:7f3a0c1d9e2b"
	authz.uses_capability("text.summarize")
	msg := concat("", [input.principal.subject, " may not summarize"])
}
