/** Entry point of the `agentmesh` command (`bin/agentmesh.js` loads it). */
import { main } from "./dispatch.js";

process.exitCode = await main(process.argv.slice(2));
