package agentmesh.authz_card_signing_test

import data.agentmesh.authz

register := "agentmesh.v1.RegistryService/RegisterAgent"

# The registry's second question: agent-text registers text.summarize with a card whose signature it checked.
admit(status, signer) := {
	"peer": {"spiffe_id": "spiffe://agentmesh.local/ns/agentmesh/sa/agent-text"},
	"method": {"full": register},
	"resource": {"capabilities": ["text.summarize"]},
	"card": {"name": "text", "version": "2.0.0", "signature": {"status": status, "signer": signer}},
}

test_unsigned_card_admitted_by_default if {
	authz.decision.allow with input as admit("unsigned", "")
}

test_unknown_signer_admitted_by_default if {
	authz.decision.allow with input as admit("unknown_signer", "someone")
}

test_unsigned_card_refused_when_required if {
	d := authz.decision with input as admit("unsigned", "")
		with data.agentmesh.config.card_signing.required_for as ["text.*"]
	not d.allow
	d.reason == "agent card text 2.0.0 is unsigned but capabilities text.summarize need a card signed by a trusted signer (card_signing.required_for \"text.*\")"
}

test_unknown_signer_refused_when_required if {
	d := authz.decision with input as admit("unknown_signer", "mallory")
		with data.agentmesh.config.card_signing.required_for as ["*"]
	not d.allow
	contains(d.reason, "is signed by mallory, a signer the registry does not trust")
}

test_valid_signature_admitted_when_required if {
	authz.decision.allow with input as admit("valid", "acme-release")
		with data.agentmesh.config.card_signing.required_for as ["text.*"]
}

test_requirement_for_other_capabilities_does_not_apply if {
	authz.decision.allow with input as admit("unsigned", "")
		with data.agentmesh.config.card_signing.required_for as ["shell.*"]
}

test_signer_outside_the_patterns_list_refused if {
	d := authz.decision with input as admit("valid", "acme-dev")
		with data.agentmesh.config.card_signing.signers_for as {"text.*": ["acme-release"]}
	not d.allow
	d.reason == "agent card text 2.0.0 is signed by acme-dev but capabilities text.summarize take only signers acme-release (card_signing.signers_for \"text.*\")"
}

test_listed_signer_admitted if {
	authz.decision.allow with input as admit("valid", "acme-release")
		with data.agentmesh.config.card_signing.signers_for as {"text.*": ["acme-release"]}
}

# The first question (the RPC itself, no card yet) is not affected by the requirement.
test_registration_call_without_card_unaffected if {
	authz.decision.allow with input as object.remove(admit("unsigned", ""), ["card"])
		with data.agentmesh.config.card_signing.required_for as ["*"]
}

# A grant denial still comes first.
test_ungranted_capability_still_denied_first if {
	d := authz.decision with input as object.union(admit("valid", "acme-release"), {"resource": {"capabilities": ["shell.exec"]}})
	not d.allow
	contains(d.reason, "may not register capabilities shell.exec")
}
