package agentmesh.ext.no_shell_for_acme_test

import data.agentmesh.authz
import data.agentmesh.ext.no_shell_for_acme

# Tests look at this package's own `deny` (other extensions may deny too) and
# at the combined decision only for what must hold whatever else is loaded.

acme_admin := {"tenant_id": "acme", "subject": "ada", "roles": ["tenant.admin"]}

dispatch(tenant, capability) := {
	"peer": {"spiffe_id": "spiffe://agentmesh.local/ns/agentmesh/sa/executor"},
	"method": {"full": "agentmesh.v1.ExecutorService/DispatchStep"},
	"resource": {"tenant_id": tenant, "goal_id": "g1", "goal_kind": "ops", "capability": capability},
}

via_gateway(method, resource) := {
	"peer": {"spiffe_id": "spiffe://agentmesh.local/ns/agentmesh/sa/gateway"},
	"principal": acme_admin,
	"method": {"full": method},
	"resource": resource,
}

test_acme_may_not_dispatch_shell if {
	no_shell_for_acme.deny == {"tenant acme may not use shell.exec"} with input as dispatch("acme", "shell.exec")
	d := authz.decision with input as dispatch("acme", "shell.exec")
	not d.allow
	contains(d.reason, "tenant acme may not use shell.exec")
}

test_other_tenants_and_capabilities_unaffected if {
	count(no_shell_for_acme.deny) == 0 with input as dispatch("globex", "shell.exec")
	count(no_shell_for_acme.deny) == 0 with input as dispatch("acme", "util.echo")
}

test_acme_may_not_store_a_playbook_with_a_shell_step if {
	i := via_gateway("agentmesh.v1.PlannerService/PutPlaybook", {"tenant_id": "acme", "goal_kind": "ops", "capabilities": ["util.echo", "shell.exec"]})
	no_shell_for_acme.deny == {"tenant acme may not use shell.exec"} with input as i
	not authz.decision.allow with input as i
}

test_acme_may_not_look_for_shell_agents if {
	i := via_gateway("agentmesh.v1.RegistryService/FindAgents", {"capability": "shell.exec"})
	no_shell_for_acme.deny == {"tenant acme may not use shell.exec"} with input as i
	not authz.decision.allow with input as i
}
