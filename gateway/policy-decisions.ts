/**
 * `AdminService/ListPolicyDecisions`, served from the gateway's own recent
 * decisions (`recent-decisions.ts`). The policy has already let the caller
 * read `tenant_id`'s decisions (tenant admins their own tenant, platform
 * admins any); every tenant's at once (`all_tenants`) is for platform admins.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type ListPolicyDecisionsRequest,
  PolicyDecisionSchema,
} from "../gen/agentmesh/v1/admin_pb.js";
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { effectiveRoles } from "./admin-service.js";
import type { LocalHandler } from "./forward.js";
import type { RecentDecisions } from "./recent-decisions.js";

/** The role that may read every tenant's decisions. */
const allTenantsRole = "platform.admin";

export function policyDecisionHandlers(decisions: RecentDecisions): Record<string, LocalHandler> {
  return {
    async listPolicyDecisions(request, _ctx, principal: Principal) {
      const req = request as ListPolicyDecisionsRequest;
      if (req.allTenants && !effectiveRoles(principal.roles).has(allTenantsRole)) {
        throw new MeshError(
          Code.PermissionDenied,
          `every tenant's decisions need the ${allTenantsRole} role`,
        );
      }
      const list = decisions.list({
        ...(req.allTenants ? {} : { tenantId: req.tenantId || principal.tenantId }),
        deniedOnly: req.deniedOnly,
        limit: req.limit || 100,
      });
      return {
        decisions: list.map((d) =>
          create(PolicyDecisionSchema, {
            time: timestampFromMs(d.time),
            tenantId: d.tenantId,
            subject: d.subject,
            roles: d.roles,
            method: d.method,
            allow: d.allow,
            reason: d.reason,
            input: d.input,
          }),
        ),
      };
    },
  };
}
