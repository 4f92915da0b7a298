/**
 * Admission of a card at registration (ADR-015): its signature is checked
 * against the trust roots, then the policy is asked again with what the check
 * found (`input.card.signature`), so a rule can require a trusted signer for
 * some capabilities. A signature that does not verify is always refused,
 * whatever the policy says: a forged or altered card is never "unsigned".
 *
 * @example
 * const admission = cardAdmission({ trust: cardTrustFile(path, log), check: runtime.policyCheck("registry", id) });
 * const signer = admission.admit(card, request, ctx); // "" when unsigned; throws INVALID_ARGUMENT or PERMISSION_DENIED
 */
import type { AgentCard, RegisterAgentRequest } from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { buildPolicyInput, type PolicyInput } from "../../lib/policy/input.js";
import type { Decision } from "../../lib/rpc/authorizer.js";
import type { HandlerContext } from "../../lib/rpc/index.js";
import { verifyCard } from "../../lib/signing/card-signature.js";
import type { CardTrustSource } from "../../lib/signing/card-trust.js";

export interface CardAdmission {
  /**
   * The verified signer ("" when the card is admitted unsigned or by an unknown signer).
   * Throws INVALID_ARGUMENT for a signature that does not verify (the card itself is
   * wrong: an agent fails at start rather than retry), PERMISSION_DENIED when the policy
   * refuses (a signer added to the trust roots later lets a retrying agent in).
   */
  admit(card: AgentCard, request: RegisterAgentRequest, ctx: HandlerContext): string;
}

export function cardAdmission(deps: {
  trust: CardTrustSource;
  /** Decides and writes the decision log (`runtime.policyCheck`). */
  check: (input: PolicyInput) => Decision;
}): CardAdmission {
  return {
    admit(card, request, ctx) {
      const verdict = verifyCard(card, deps.trust.current());
      const label = `agent card ${card.name} ${card.version}`;
      if (verdict.status === "invalid") {
        throw new MeshError(
          Code.InvalidArgument,
          `${label} has a bad signature by signer ${verdict.signer}: ${verdict.reason}`,
          { retryable: false },
        );
      }
      const input = buildPolicyInput({
        peer: ctx.peer,
        principal: ctx.principal,
        method: ctx.method,
        request,
      });
      input.card = {
        name: card.name,
        version: card.version,
        signature: { status: verdict.status, signer: verdict.signer },
      };
      const decision = deps.check(input);
      if (!decision.allow) {
        throw new MeshError(Code.PermissionDenied, decision.reason, { retryable: false });
      }
      return verdict.status === "valid" ? verdict.signer : "";
    },
  };
}
