package agentmesh.ext.destructive_needs_operator_test

import data.agentmesh.authz
import data.agentmesh.ext.destructive_needs_operator

dispatch_of(side_effect, roles) := {
	"peer": {"spiffe_id": "spiffe://agentmesh.local/ns/agentmesh/sa/executor"},
	"method": {"full": "agentmesh.v1.ExecutorService/DispatchStep"},
	"principal": {"tenant_id": "umbrella", "subject": "key:k1", "roles": roles},
	"resource": {"tenant_id": "umbrella", "goal_id": "g1", "goal_kind": "cleanup", "capability": "files.delete", "auth_scope": "", "side_effect": side_effect},
}

test_destructive_dispatch_needs_the_role if {
	destructive_needs_operator.deny == {"files.delete is destructive: the goal's principal needs the role tools.operator"} with input as dispatch_of("destructive", ["goals.write"])
	d := authz.decision with input as dispatch_of("destructive", ["goals.write"])
	not d.allow
	contains(d.reason, "files.delete is destructive")
}

test_destructive_dispatch_with_the_role_passes if {
	count(destructive_needs_operator.deny) == 0 with input as dispatch_of("destructive", ["goals.write", "tools.operator"])
}

test_read_only_dispatch_needs_nothing if {
	count(destructive_needs_operator.deny) == 0 with input as dispatch_of("read_only", ["goals.write"])
	count(destructive_needs_operator.deny) == 0 with input as dispatch_of("", [])
}
