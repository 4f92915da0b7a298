# Signed agent cards. The registry asks the policy a second time at RegisterAgent once it has
# checked the card's Ed25519 signature against its trust roots (ADR-015):
# input.card.signature.status is "valid", "unsigned" or "unknown_signer"
# (a signature that does not verify is refused before the policy is asked).
# data.agentmesh.config.card_signing says which capabilities need a card
# signed by a trusted signer (required_for: capability patterns) and, per
# pattern, which signers count (signers_for; a pattern not listed takes any
# trusted signer). The first question, without input.card, is unaffected.
package agentmesh.authz

card_signing := object.get(cfg, "card_signing", {})

# Patterns of capabilities whose agents must present a card signed by a trusted signer.
card_signature_required_for contains pattern if {
	some pattern in object.get(card_signing, "required_for", [])
}

# The card's capabilities a pattern that requires signing matches.
card_capabilities_requiring(pattern) := {c |
	some c in input.resource.capabilities
	capability_matches(pattern, c)
}

card_label := concat("", ["agent card ", input.card.name, " ", input.card.version])

card_signing_denials contains msg if {
	is_object(input.card)
	input.card.signature.status != "valid"
	some pattern in card_signature_required_for
	caps := card_capabilities_requiring(pattern)
	count(caps) > 0
	msg := concat("", [
		card_label, " is ", card_signature_words[input.card.signature.status],
		" but capabilities ", concat(", ", sort(caps)),
		" need a card signed by a trusted signer (card_signing.required_for ", json.marshal(pattern), ")",
	])
}

card_signing_denials contains msg if {
	is_object(input.card)
	input.card.signature.status == "valid"
	some pattern, signers in object.get(card_signing, "signers_for", {})
	caps := card_capabilities_requiring(pattern)
	count(caps) > 0
	not input.card.signature.signer in signers
	msg := concat("", [
		card_label, " is signed by ", input.card.signature.signer,
		" but capabilities ", concat(", ", sort(caps)), " take only signers ",
		concat(", ", sort(signers)), " (card_signing.signers_for ", json.marshal(pattern), ")",
	])
}

card_signature_words := {
	"unsigned": "unsigned",
	"unknown_signer": concat("", ["signed by ", object.get(input.card.signature, "signer", ""), ", a signer the registry does not trust"]),
}
