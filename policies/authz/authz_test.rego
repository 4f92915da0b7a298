package agentmesh.authz_test

import data.agentmesh.authz

td := "spiffe://agentmesh.local/ns/agentmesh/sa/"

call(name, method, resource) := {"peer": {"spiffe_id": concat("", [td, name])}, "method": {"full": method}, "resource": resource}

via_gateway(principal, method, resource) := object.union(call("gateway", method, resource), {"principal": principal})

acme_reader := {"tenant_id": "acme", "subject": "rita", "roles": ["goals.read"]}

acme_writer := {"tenant_id": "acme", "subject": "wes", "roles": ["goals.write"]}

acme_admin := {"tenant_id": "acme", "subject": "ada", "roles": ["tenant.admin"]}

root := {"tenant_id": "ops", "subject": "root", "roles": ["platform.admin"]}

submit := "agentmesh.v1.ExecutorService/SubmitGoal"

register := "agentmesh.v1.RegistryService/RegisterAgent"

# --- Peers

test_missing_peer_denied if {
	d := authz.decision with input as {"method": {"full": submit}}
	not d.allow
	d.reason == "caller has no valid mesh SPIFFE ID"
	d.principal_trusted == false
}

test_malformed_spiffe_ids_denied if {
	every id in [
		"spiffe://agentmesh.local/sa/executor",
		"https://agentmesh.local/ns/agentmesh/sa/executor",
		"spiffe://agentmesh.local/ns/agentmesh/sa/",
		"spiffe:/x/agentmesh.local/ns/agentmesh/sa/executor",
		"spiffe://agentmesh.local/xx/agentmesh/sa/executor",
		"spiffe://agentmesh.local/ns/agentmesh/xx/executor",
	] {
		d := authz.decision with input as {"peer": {"spiffe_id": id}, "method": {"full": submit}}
		d.reason == "caller has no valid mesh SPIFFE ID"
	}
}

test_foreign_trust_domain_denied if {
	d := authz.decision with input as {"peer": {"spiffe_id": "spiffe://evil.example/ns/agentmesh/sa/cli"}, "method": {"full": submit}}
	not d.allow
	d.reason == "peer spiffe://evil.example/ns/agentmesh/sa/cli is not in trust domain agentmesh.local"
}

test_trust_domain_comes_from_data if {
	d := authz.decision with input as {"peer": {"spiffe_id": "spiffe://prod.example/ns/agentmesh/sa/cli"}, "method": {"full": submit}}
		with data.agentmesh.config.trust_domain as "prod.example"
	d.allow
}

test_unknown_identity_denied if {
	d := authz.decision with input as call("intruder", submit, {"tenant_id": "acme"})
	not d.allow
	d.reason == "peer spiffe://agentmesh.local/ns/agentmesh/sa/intruder may not call agentmesh.v1.ExecutorService/SubmitGoal"
}

# --- Health and reflection

test_health_for_known_identities if {
	every name in ["registry", "planner", "executor", "learning", "gateway", "cli", "agent-text", "agent-mcp-everything"] {
		d := authz.decision with input as call(name, "grpc.health.v1.Health/Check", {})
		d.allow
	}
}

test_reflection_for_known_identities if {
	d := authz.decision with input as call("planner", "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", {})
	d.allow
	d.reason == "mesh identity planner may call grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
}

test_health_denied_to_unknown if {
	d := authz.decision with input as call("agent-unknown", "grpc.health.v1.Health/Watch", {})
	not d.allow
}

# --- Service-to-service grants

test_executor_grants if {
	every m in [
		"agentmesh.v1.PlannerService/PlanGoal",
		"agentmesh.v1.PlannerService/ExplainPlan",
		"agentmesh.v1.RegistryService/FindAgents",
		"agentmesh.v1.LearningService/RecordOutcome",
		"agentmesh.v1.ExecutorService/SubmitGoal",
		"agentmesh.v1.ExecutorService/WatchGoal",
	] {
		d := authz.decision with input as call("executor", m, {"tenant_id": "acme"})
		d.allow
	}
}

test_executor_denials if {
	every m in ["agentmesh.v1.PlannerService/PutPlaybook", "agentmesh.v1.AdminService/CreateApiKey", register] {
		d := authz.decision with input as call("executor", m, {})
		not d.allow
	}
}

test_planner_registry_learning_grants if {
	d1 := authz.decision with input as call("planner", "agentmesh.v1.LearningService/GetAgentReliability", {})
	d1.allow
	d2 := authz.decision with input as call("registry", "agentmesh.v1.LearningService/GetAgentReliability", {})
	d2.allow
	d3 := authz.decision with input as call("learning", "agentmesh.v1.RegistryService/ListAgents", {})
	d3.allow
	d4 := authz.decision with input as call("learning", "agentmesh.v1.RegistryService/GetAgent", {})
	not d4.allow
	d5 := authz.decision with input as call("planner", submit, {"tenant_id": "acme"})
	not d5.allow
}

test_cli_may_call_everything if {
	every m in [submit, "agentmesh.v1.AdminService/CreateTenant", "agentmesh.v1.LearningService/RollbackParameters"] {
		d := authz.decision with input as call("cli", m, {"tenant_id": "acme"})
		d.allow
		d.principal_trusted == false
	}
}

test_cli_registers_any_capability if {
	d := authz.decision with input as call("cli", register, {"capabilities": ["shell.exec"]})
	d.allow
}

# --- Agents

test_agent_methods if {
	every m in [
		"agentmesh.v1.RegistryService/Heartbeat",
		"agentmesh.v1.RegistryService/DeregisterAgent",
		"agentmesh.v1.RegistryService/RegisterTool",
		"agentmesh.v1.RegistryService/FindAgents",
		"agentmesh.v1.RegistryService/ReportConformance",
	] {
		d := authz.decision with input as call("agent-data", m, {})
		d.allow
	}
	d := authz.decision with input as call("agent-data", "agentmesh.v1.RegistryService/ListAgents", {})
	not d.allow
}

test_agent_registers_own_capabilities if {
	d := authz.decision with input as call("agent-text", register, {"capabilities": ["text.summarize", "text.translate"]})
	d.allow
	d2 := authz.decision with input as call("agent-http", register, {"capabilities": ["http.fetch"]})
	d2.allow
}

test_agent_may_not_register_foreign_capabilities if {
	d := authz.decision with input as call("agent-text", register, {"capabilities": ["text.summarize", "shell.exec", "http.fetch"]})
	not d.allow
	d.reason == "peer spiffe://agentmesh.local/ns/agentmesh/sa/agent-text may not register capabilities http.fetch, shell.exec (grant them to \"agent-text\" in agent_capabilities of policies/data.json)"
}

test_unknown_agent_is_told_the_grant_to_add if {
	d := authz.decision with input as call("agent-shout", register, {"capabilities": ["shout.upper", "shout.lower"]})
	not d.allow
	d.reason == "peer spiffe://agentmesh.local/ns/agentmesh/sa/agent-shout may not call agentmesh.v1.RegistryService/RegisterAgent: identity agent-shout has no grant; add \"agent-shout\": [\"shout.lower\", \"shout.upper\"] to agent_capabilities in policies/data.json and rebuild the bundle (agentmesh policy build)"
	d2 := authz.decision with input as call("agent-shout", "agentmesh.v1.RegistryService/Heartbeat", {})
	endswith(d2.reason, "add \"agent-shout\": [\"<capability>\"] to agent_capabilities in policies/data.json and rebuild the bundle (agentmesh policy build)")
}

test_exact_capability_grant_is_exact if {
	d := authz.decision with input as call("agent-http", register, {"capabilities": ["http.fetch.more"]})
	not d.allow
}

test_mcp_agents_get_their_server_namespace if {
	d := authz.decision with input as call("agent-mcp-github", register, {"capabilities": ["mcp.github.search"]})
	d.allow
	d2 := authz.decision with input as call("agent-mcp-github", register, {"capabilities": ["mcp.gitlab.search"]})
	not d2.allow
	d3 := authz.decision with input as call("agent-mcp-", register, {"capabilities": []})
	not d3.allow
}

test_wildcard_capability_grant if {
	d := authz.decision with input as call("agent-test", register, {"capabilities": ["anything.at.all"]})
		with data.agentmesh.config.agent_capabilities["agent-test"] as ["*"]
	d.allow
}

# --- Delegated principals

test_gateway_without_principal_denied_for_tenant_scoped if {
	d := authz.decision with input as call("gateway", "agentmesh.v1.ExecutorService/GetGoal", {"tenant_id": "acme"})
	not d.allow
	d.reason == "peer spiffe://agentmesh.local/ns/agentmesh/sa/gateway may not call agentmesh.v1.ExecutorService/GetGoal without a principal"
}

test_gateway_without_principal_denied_elsewhere if {
	d := authz.decision with input as call("gateway", "agentmesh.v1.RegistryService/ListAgents", {})
	not d.allow
	d.reason == "peer spiffe://agentmesh.local/ns/agentmesh/sa/gateway may not call agentmesh.v1.RegistryService/ListAgents"
}

test_only_delegators_are_trusted if {
	d := authz.decision with input as object.union(call("executor", submit, {"tenant_id": "acme"}), {"principal": acme_reader})
	d.allow
	d.principal_trusted == false
	d2 := authz.decision with input as object.union(call("agent-text", submit, {"tenant_id": "acme"}), {"principal": root})
	not d2.allow
}

test_reader if {
	d := authz.decision with input as via_gateway(acme_reader, "agentmesh.v1.ExecutorService/GetGoal", {"tenant_id": "acme", "goal_id": "g1"})
	d.allow
	d.principal_trusted
	d.reason == "principal acme/rita (roles: goals.read) may call agentmesh.v1.ExecutorService/GetGoal via gateway"
	d2 := authz.decision with input as via_gateway(acme_reader, submit, {"tenant_id": "acme"})
	not d2.allow
	d2.principal_trusted
	d2.reason == "principal acme/rita (roles: goals.read) may not call agentmesh.v1.ExecutorService/SubmitGoal"
}

test_reader_sees_registry_without_tenant if {
	d := authz.decision with input as via_gateway(acme_reader, "agentmesh.v1.RegistryService/ListAgents", {"capability": ""})
	d.allow
}

test_writer_includes_reader if {
	every m in [submit, "agentmesh.v1.ExecutorService/CancelGoal", "agentmesh.v1.ExecutorService/ListGoals"] {
		d := authz.decision with input as via_gateway(acme_writer, m, {"tenant_id": "acme"})
		d.allow
	}
	d := authz.decision with input as via_gateway(acme_writer, "agentmesh.v1.PlannerService/PutPlaybook", {"tenant_id": "acme"})
	not d.allow
}

test_tenant_admin if {
	every m in [
		"agentmesh.v1.AdminService/CreateApiKey",
		"agentmesh.v1.AdminService/RevokeApiKey",
		"agentmesh.v1.PlannerService/PutPlaybook",
		"agentmesh.v1.ExecutorService/WatchGoal",
	] {
		d := authz.decision with input as via_gateway(acme_admin, m, {"tenant_id": "acme"})
		d.allow
	}
	every m in ["agentmesh.v1.AdminService/CreateTenant", "agentmesh.v1.AdminService/ListTenants"] {
		d := authz.decision with input as via_gateway(acme_admin, m, {})
		not d.allow
	}
}

test_tenant_isolation if {
	d := authz.decision with input as via_gateway(acme_admin, "agentmesh.v1.AdminService/ListApiKeys", {"tenant_id": "globex"})
	not d.allow
	d.reason == "tenant acme may not access tenant globex"
}

test_tenant_scoped_call_must_name_a_tenant if {
	d := authz.decision with input as via_gateway(acme_reader, "agentmesh.v1.LearningService/GetStrategyStats", {"tenant_id": ""})
	not d.allow
	d.reason == "tenant acme may not access all tenants"
}

test_principal_without_tenant_is_not_in_any_tenant if {
	p := {"tenant_id": "", "subject": "x", "roles": ["goals.read"]}
	d := authz.decision with input as via_gateway(p, "agentmesh.v1.ExecutorService/ListGoals", {"tenant_id": ""})
	not d.allow
}

test_platform_admin_crosses_tenants if {
	every m in [submit, "agentmesh.v1.AdminService/CreateTenant", "agentmesh.v1.AdminService/ListTenants"] {
		d := authz.decision with input as via_gateway(root, m, {"tenant_id": "globex"})
		d.allow
	}
}

test_unknown_roles_grant_nothing if {
	p := {"tenant_id": "acme", "subject": "x", "roles": ["root", "superuser"]}
	d := authz.decision with input as via_gateway(p, "agentmesh.v1.ExecutorService/GetGoal", {"tenant_id": "acme"})
	not d.allow
}

test_principal_from_foreign_gateway_ignored if {
	i := {
		"peer": {"spiffe_id": "spiffe://evil.example/ns/agentmesh/sa/gateway"},
		"principal": root,
		"method": {"full": submit},
		"resource": {"tenant_id": "acme"},
	}
	d := authz.decision with input as i
	not d.allow
	d.principal_trusted == false
}

# --- Extension rules (packages agentmesh.ext.*)

dispatch := "agentmesh.v1.ExecutorService/DispatchStep"

dispatch_input(tenant, kind, capability) := call("executor", dispatch, {"tenant_id": tenant, "goal_id": "g1", "goal_kind": kind, "capability": capability})

test_extension_denial_overrides_an_allow if {
	d := authz.decision with input as dispatch_input("acme", "echo", "shell.exec")
		with data.agentmesh.ext.no_shell.deny as {"tenant acme may not use shell.exec"}
	not d.allow
	d.reason == "tenant acme may not use shell.exec"
	d.principal_trusted == false
}

test_extension_denials_are_listed_sorted if {
	d := authz.decision with input as via_gateway(acme_writer, submit, {"tenant_id": "acme"})
		with data.agentmesh.ext.b.deny as {"zeta", "alpha"}
		with data.agentmesh.ext.a.deny as {{"code": 7}}
	not d.allow
	d.reason == `alpha; zeta; {"code":7}`
	d.principal_trusted
}

test_builtin_denial_wins_over_extensions if {
	d := authz.decision with input as via_gateway(acme_reader, submit, {"tenant_id": "acme"})
		with data.agentmesh.ext.x.deny as {"extension says no"}
	d.reason == "principal acme/rita (roles: goals.read) may not call agentmesh.v1.ExecutorService/SubmitGoal"
}

test_no_extension_messages_keeps_the_builtin_allow if {
	d := authz.decision with input as dispatch_input("acme", "echo", "util.echo")
		with data.agentmesh.ext.x.deny as set()
	d.allow
	d.reason == "peer spiffe://agentmesh.local/ns/agentmesh/sa/executor may call agentmesh.v1.ExecutorService/DispatchStep"
}

test_executor_may_dispatch_and_no_one_else if {
	d := authz.decision with input as dispatch_input("acme", "echo", "util.echo")
	d.allow
	d2 := authz.decision with input as call("planner", dispatch, {"tenant_id": "acme", "capability": "util.echo"})
	not d2.allow
}

# --- Helpers for extension rules

test_acting_tenant if {
	authz.acting_tenant == "acme" with input as call("executor", dispatch, {"tenant_id": "acme"})
	authz.acting_tenant == "acme" with input as via_gateway(acme_reader, "agentmesh.v1.RegistryService/FindAgents", {"capability": "x"})
	authz.acting_tenant == "" with input as object.union(call("executor", submit, {}), {"principal": acme_reader})
	authz.acting_tenant == "" with input as call("cli", "agentmesh.v1.RegistryService/ListAgents", {"capability": ""})
	authz.acting_tenant == "acme" with input as via_gateway(acme_admin, "agentmesh.v1.LearningService/GetStrategyStats", {"tenant_id": ""})
}

test_capabilities_used if {
	authz.capabilities_used == {"shell.exec"} with input as call("cli", "agentmesh.v1.RegistryService/FindAgents", {"capability": "shell.exec"})
	authz.capabilities_used == {"text.summarize", "shell.exec"} with input as call("cli", "agentmesh.v1.PlannerService/PutPlaybook", {"tenant_id": "acme", "capabilities": ["text.summarize", "shell.exec", ""]})
	authz.capabilities_used == set() with input as call("cli", "agentmesh.v1.RegistryService/FindAgents", {"capability": ""})
}

test_uses_capability if {
	authz.uses_capability("shell.*") with input as dispatch_input("acme", "echo", "shell.exec")
	not authz.uses_capability("shell.*") with input as dispatch_input("acme", "echo", "util.echo")
	authz.uses_capability("*") with input as dispatch_input("acme", "echo", "util.echo")
}

# --- Capability scopes at dispatch

scoped_dispatch(principal, scope) := object.union(
	call("executor", dispatch, {"tenant_id": "initech", "goal_id": "g1", "goal_kind": "ops", "capability": "ops.deploy", "auth_scope": scope, "side_effect": ""}),
	{"principal": principal},
)

test_scoped_capability_refused_without_the_scope if {
	d := authz.decision with input as scoped_dispatch({"tenant_id": "initech", "subject": "key:k1", "roles": ["goals.write"]}, "tools:deploy")
	not d.allow
	d.reason == "principal initech/key:k1 (roles: goals.write) lacks the scope tools:deploy that ops.deploy requires (a role named tools:deploy, or a role listing it in scopes)"
}

test_scoped_capability_allowed_with_a_role_of_its_name if {
	d := authz.decision with input as scoped_dispatch({"tenant_id": "initech", "subject": "key:k1", "roles": ["goals.write", "tools:deploy"]}, "tools:deploy")
	d.allow
}

test_scoped_capability_allowed_by_a_role_listing_it if {
	d := authz.decision with input as scoped_dispatch({"tenant_id": "initech", "subject": "key:k1", "roles": ["tenant.admin"]}, "tools:deploy")
		with data.agentmesh.config.roles["goals.write"].scopes as ["tools:deploy"]
	d.allow
	authz.principal_scopes["tools:deploy"] with input as scoped_dispatch({"tenant_id": "initech", "subject": "key:k1", "roles": ["tenant.admin"]}, "tools:deploy")
		with data.agentmesh.config.roles["goals.write"].scopes as ["tools:deploy"]
}

test_unscoped_capability_needs_no_scope if {
	d := authz.decision with input as scoped_dispatch({"tenant_id": "initech", "subject": "key:k1", "roles": []}, "")
	d.allow
}

test_scoped_capability_for_a_mesh_identity_goal_follows_its_grants if {
	d := authz.decision with input as scoped_dispatch({"tenant_id": "initech", "subject": "spiffe://agentmesh.local/ns/agentmesh/sa/cli", "roles": []}, "tools:deploy")
	d.allow
}

test_scoped_capability_without_a_principal_refused if {
	d := authz.decision with input as call("executor", dispatch, {"tenant_id": "initech", "goal_id": "g1", "goal_kind": "ops", "capability": "ops.deploy", "auth_scope": "tools:deploy"})
	not d.allow
	contains(d.reason, "lacks the scope tools:deploy")
}

# --- Single capabilities as goals (kind capability.<name>)

test_single_capability_goal_needs_the_run_capability_grant if {
	resource := {"tenant_id": "acme", "goal_kind": "capability.text.upper"}
	d := authz.decision with input as via_gateway(acme_writer, submit, resource)
	not d.allow
	d.reason == "principal acme/wes (roles: goals.write) may not run the single capability text.upper (goal kind capability.text.upper): no role grants agentmesh.v1.ExecutorService/RunCapability"
	runner := {"tenant_id": "acme", "subject": "cy", "roles": ["capabilities.run"]}
	authz.decision.allow with input as via_gateway(runner, submit, resource)
	authz.decision.allow with input as via_gateway(root, submit, resource)

	# Playbook goal kinds are unaffected.
	authz.decision.allow with input as via_gateway(acme_writer, submit, {"tenant_id": "acme", "goal_kind": "echo"})
}

test_single_capability_goal_by_a_service_needs_the_grant if {
	resource := {"tenant_id": "acme", "goal_kind": "capability.text.upper"}
	authz.decision.allow with input as call("cli", submit, resource)
	authz.decision.allow with input as call("executor", submit, resource)
	d := authz.decision with input as call("executor", submit, resource)
		with data.agentmesh.config.service_grants.executor as [submit]
	not d.allow
	d.reason == "peer spiffe://agentmesh.local/ns/agentmesh/sa/executor may not run the single capability goal kind capability.text.upper without a grant of agentmesh.v1.ExecutorService/RunCapability"
}
