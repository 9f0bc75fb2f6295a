/**
 * Entry point of the SFrame encoded-transform worker (bundle it for the browser and start it with
 * `new Worker(url, { type: "module" })`). The page posts SframeWorkerRequest messages (keys from
 * CallKeys.onKeys) and attaches `new RTCRtpScriptTransform(worker, { role, kind })` to senders
 * and receivers.
 */
import { installSframeWorker, type TransformWorkerScope } from "./sframe-transform.js";

installSframeWorker(globalThis as unknown as TransformWorkerScope);
