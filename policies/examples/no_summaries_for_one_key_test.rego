package agentmesh.ext.no_summaries_for_one_key_test

import data.agentmesh.authz
import data.agentmesh.ext.no_summaries_for_one_key

# A dispatch as the executor asks it: the principal is who the goal acts for.
dispatch(subject, capability) := {
	"peer": {"spiffe_id": "spiffe://agentmesh.local/ns/agentmesh/sa/executor"},
	"principal": {"tenant_id": "acme", "subject": subject, "roles": []},
	"method": {"full": "agentmesh.v1.ExecutorService/DispatchStep"},
	"resource": {"tenant_id": "acme", "goal_id": "g1", "goal_kind": "summarize", "capability": capability},
	"request": {"step_id": "s", "capability": capability, "submitted_by": concat("/", ["acme", subject])},
}

test_the_key_may_not_dispatch_a_summary if {
	i := dispatch("key:7f3a0c1d9e2b", "text.summarize")
	no_summaries_for_one_key.deny == {"key:7f3a0c1d9e2b may not summarize"} with input as i
	d := authz.decision with input as i
	not d.allow
	contains(d.reason, "key:7f3a0c1d9e2b may not summarize")
}

test_other_keys_and_capabilities_unaffected if {
	count(no_summaries_for_one_key.deny) == 0 with input as dispatch("key:000000000000", "text.summarize")
	count(no_summaries_for_one_key.deny) == 0 with input as dispatch("key:7f3a0c1d9e2b", "text.keywords")
	authz.decision.allow with input as dispatch("key:000000000000", "text.summarize")
}

test_a_goal_without_a_submitter_is_unaffected if {
	i := object.remove(dispatch("key:7f3a0c1d9e2b", "text.summarize"), ["principal"])
	count(no_summaries_for_one_key.deny) == 0 with input as i
}
