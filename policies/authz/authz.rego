# METADATA
# title: agentmesh authorization
# description: |
#   One decision per RPC: may this caller (the SPIFFE ID of the verified peer
#   certificate, and the principal a delegating gateway vouches for) call this
#   method on this resource? Who may call what lives in data.agentmesh.config
#   (policies/data.json); this file only says how grants combine.
#   Entrypoint: agentmesh/authz/decision. Default deny.
#
#   Extension point: any package agentmesh.ext.<name> may define
#   `deny contains msg` rules; a call the built-in rules allow is denied when
#   any of them yields a message (the reason lists every message, sorted).
#   Extensions can only take permissions away, never grant them.
package agentmesh.authz

cfg := data.agentmesh.config

# The decision: the built-in chain, then the authors' extension rules.
decision := builtin_decision if {
	not builtin_decision.allow
} else := deny(concat("; ", sort(card_signing_denials))) if {
	# Signed cards (card_signing.rego): a built-in rule, ahead of the extensions.
	count(card_signing_denials) > 0
} else := builtin_decision if {
	count(extension_denials) == 0
} else := deny(concat("; ", sort(extension_denials)))

# Every message of every `deny` rule under data.agentmesh.ext (one package per file of policies/ext/).
extension_denials contains text(msg) if {
	some msg in data.agentmesh.ext[_].deny
}

text(x) := x if is_string(x)

text(x) := json.marshal(x) if not is_string(x)

# The built-in answer for one input document, first matching line wins. Every
# branch yields {allow, reason, principal_trusted}; the last one denies.
builtin_decision := deny("caller has no valid mesh SPIFFE ID") if {
	not peer_well_formed
} else := deny(concat("", ["peer ", input.peer.spiffe_id, " is not in trust domain ", cfg.trust_domain])) if {
	peer_trust_domain != cfg.trust_domain
} else := allow(concat("", ["mesh identity ", peer_name, " may call ", method_full])) if {
	known_identity
	some pattern in cfg.any_identity_methods
	method_matches(pattern, method_full)
} else := deny(concat("", [principal_label, " may not call ", method_full])) if {
	principal_trusted
	not principal_may_call
} else := deny(concat("", ["tenant ", input.principal.tenant_id, " may not access ", tenant_label(input.resource.tenant_id)])) if {
	principal_trusted
	not tenant_allowed
} else := deny(concat("", [principal_label, " may not run the single capability ", trim_prefix(input.resource.goal_kind, "capability."), " (goal kind ", input.resource.goal_kind, "): no role grants ", run_capability_method])) if {
	principal_trusted
	runs_single_capability
	not principal_may_run_capability
} else := allow(concat("", [principal_label, " may call ", method_full, " via ", peer_name])) if {
	principal_trusted
} else := deny(concat("", ["peer ", input.peer.spiffe_id, " may not run the single capability goal kind ", input.resource.goal_kind, " without a grant of ", run_capability_method])) if {
	peer_may_call
	runs_single_capability
	not peer_may_run_capability
} else := deny(concat("", ["peer ", input.peer.spiffe_id, " may not call ", method_full, " without a principal"])) if {
	peer_name in cfg.delegators
	tenant_scoped
} else := deny(concat("", ["peer ", input.peer.spiffe_id, " may not register capabilities ", concat(", ", sort(denied_capabilities)), " (grant them to ", json.marshal(peer_name), " in agent_capabilities of policies/data.json)"])) if {
	peer_may_call
	count(denied_capabilities) > 0
} else := deny(concat("", [scope_holder_label, " lacks the scope ", required_scope, " that ", input.resource.capability, " requires (a role named ", required_scope, ", or a role listing it in scopes)"])) if {
	peer_may_call
	scope_missing
} else := allow(concat("", ["peer ", input.peer.spiffe_id, " may call ", method_full])) if {
	peer_may_call
} else := deny(concat("", ["peer ", input.peer.spiffe_id, " may not call ", method_full, ": identity ", peer_name, " has no grant; add ", json.marshal(peer_name), ": [", grant_hint, "] to agent_capabilities in policies/data.json and rebuild the bundle (agentmesh policy build)"])) if {
	# A new agent's first call: say which grant would let it in.
	not known_identity
	some pattern in cfg.agent_methods
	method_matches(pattern, method_full)
} else := deny(concat("", ["peer ", input.peer.spiffe_id, " may not call ", method_full]))

allow(reason) := {"allow": true, "reason": reason, "principal_trusted": principal_trusted}

deny(reason) := {"allow": false, "reason": reason, "principal_trusted": principal_trusted}

# --- The peer, parsed from its SPIFFE ID (the only peer field the policy trusts).

peer_parts := split(input.peer.spiffe_id, "/")

peer_well_formed if {
	count(peer_parts) == 7
	peer_parts[0] == "spiffe:"
	peer_parts[1] == ""
	peer_parts[3] == "ns"
	peer_parts[5] == "sa"
	peer_parts[6] != ""
}

peer_trust_domain := peer_parts[2] if peer_well_formed

peer_name := peer_parts[6] if peer_well_formed

is_service if peer_name in cfg.mesh_identities

# An agent is an identity the data grants capabilities to, by name or by prefix.
is_agent if cfg.agent_capabilities[peer_name]

is_agent if {
	some prefix, _ in cfg.agent_capability_prefixes
	startswith(peer_name, prefix)
	peer_name != prefix
}

known_identity if is_service

known_identity if is_agent

# --- The method.

method_full := input.method.full

# Patterns: "*" (any method), "pkg.Service/*" (any method of a service), or exact.
method_matches("*", _)

method_matches(pattern, m) if pattern == m

method_matches(pattern, m) if {
	endswith(pattern, "/*")
	startswith(m, trim_suffix(pattern, "*"))
}

# --- Service-to-service and agent grants (no principal involved).

peer_may_call if {
	some pattern in cfg.service_grants[peer_name]
	method_matches(pattern, method_full)
}

peer_may_call if {
	is_agent
	some pattern in cfg.agent_methods
	method_matches(pattern, method_full)
}

# Capabilities an agent identity may register: its own list plus prefix templates
# ("agent-mcp-" with "mcp.{suffix}.*" grants agent-mcp-github "mcp.github.*").
agent_capability_grants contains pattern if {
	some pattern in cfg.agent_capabilities[peer_name]
}

agent_capability_grants contains pattern if {
	some prefix, templates in cfg.agent_capability_prefixes
	startswith(peer_name, prefix)
	suffix := trim_prefix(peer_name, prefix)
	suffix != ""
	some template in templates
	pattern := replace(template, "{suffix}", suffix)
}

# Capability patterns: "*" (any), "text.*" (any capability under text.), or exact.
capability_matches("*", _)

capability_matches(pattern, c) if pattern == c

capability_matches(pattern, c) if {
	endswith(pattern, ".*")
	startswith(c, trim_suffix(pattern, "*"))
}

capability_granted(c) if {
	some pattern in agent_capability_grants
	capability_matches(pattern, c)
}

denied_capabilities contains c if {
	is_agent
	method_full in cfg.capability_methods
	some c in input.resource.capabilities
	not capability_granted(c)
}

# The capabilities an unknown agent asked for, as the JSON of a grant list.
grant_hint := concat(", ", [json.marshal(c) | some c in sort(input.resource.capabilities)]) if {
	count(input.resource.capabilities) > 0
} else := "\"<capability>\""

# --- Delegated principals: honoured only when a delegator (the gateway) vouches.

default principal_trusted := false

principal_trusted if {
	peer_trust_domain == cfg.trust_domain
	peer_name in cfg.delegators
	is_object(input.principal)
}

principal_label := concat("", ["principal ", input.principal.tenant_id, "/", input.principal.subject, " (roles: ", concat(", ", sort(principal_roles)), ")"])

principal_roles := {r | some r in input.principal.roles}

# Roles with everything they include, transitively (tenant.admin ⊇ goals.write ⊇ goals.read).
effective_roles := graph.reachable(role_graph, principal_roles)

role_graph[name] := object.get(role, "includes", []) if some name, role in cfg.roles

principal_may_call if {
	some role in effective_roles
	some pattern in cfg.roles[role].methods
	method_matches(pattern, method_full)
}

# --- Single capabilities as goals: a goal of kind `capability.<name>` runs one
# capability as a one-step goal (the planner's, see playbook-catalog.ts). Only a
# role (or a service grant) matching the pseudo-method below may submit one;
# goals.write alone runs playbooks, not arbitrary capabilities.

run_capability_method := "agentmesh.v1.ExecutorService/RunCapability"

runs_single_capability if {
	method_full == "agentmesh.v1.ExecutorService/SubmitGoal"
	startswith(input.resource.goal_kind, "capability.")
}

principal_may_run_capability if {
	some role in effective_roles
	some pattern in cfg.roles[role].methods
	method_matches(pattern, run_capability_method)
}

peer_may_run_capability if {
	some pattern in cfg.service_grants[peer_name]
	method_matches(pattern, run_capability_method)
}

# A request is tenant-scoped when its message has a tenant_id field (set or empty).
tenant_scoped if is_string(input.resource.tenant_id)

tenant_allowed if not tenant_scoped

tenant_allowed if {
	some role in effective_roles
	cfg.roles[role].all_tenants == true
}

tenant_allowed if {
	input.principal.tenant_id != ""
	input.resource.tenant_id == input.principal.tenant_id
}

# --- Capability scopes: a capability's declared auth_scope (the tool named like it,
# in the dispatch action's resource) must be held by the principal a goal acts
# for. A principal holds a role's name and every scope its effective roles list
# under `scopes`. Goals a mesh identity submitted directly (a SPIFFE ID subject)
# are governed by that identity's grants instead.

required_scope := input.resource.auth_scope if {
	is_string(input.resource.auth_scope)
	input.resource.auth_scope != ""
}

principal_scopes contains r if some r in principal_roles

principal_scopes contains r if some r in effective_roles

principal_scopes contains s if {
	some r in effective_roles
	some s in object.get(object.get(cfg.roles, r, {}), "scopes", [])
}

acts_for_delegated_principal if {
	is_object(input.principal)
	not startswith(input.principal.subject, "spiffe://")
}

scope_missing if {
	required_scope
	acts_for_delegated_principal
	not required_scope in principal_scopes
}

scope_holder_label := principal_label if is_object(input.principal)

scope_holder_label := "a goal acting for no principal" if not input.principal

# A call by a mesh identity with no principal naming a scoped capability
# (e.g. a dispatch for a goal stored before submitters were kept) is refused too.
scope_missing if {
	required_scope
	not input.principal
}

tenant_label("") := "all tenants"

tenant_label(t) := concat("", ["tenant ", t]) if t != ""

# --- Helpers for extension rules (stable names; see policies/README.md).

# The tenant a call acts in: the resource's tenant, else a trusted principal's tenant, else "".
default acting_tenant := ""

acting_tenant := input.resource.tenant_id if {
	is_string(input.resource.tenant_id)
	input.resource.tenant_id != ""
} else := input.principal.tenant_id if {
	principal_trusted
	is_string(input.principal.tenant_id)
}

# Every capability a call names: FindAgents' capability, RegisterAgent's skills,
# PutPlaybook's step capabilities, the capability a dispatched step needs.
capabilities_used contains c if {
	c := input.resource.capability
	is_string(c)
	c != ""
}

capabilities_used contains c if {
	some c in input.resource.capabilities
	c != ""
}

# Whether a capability pattern ("*", "shell.*", "shell.exec") matches any capability the call names.
uses_capability(pattern) if {
	some c in capabilities_used
	capability_matches(pattern, c)
}
