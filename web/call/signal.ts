import * as z from "zod/mini";

/**
 * Call signalling travels as MLS application messages of the group, like chat text, so the DSs
 * carry it end to end encrypted. A signal is one JSON object whose first key is `mlsfgCall`
 * (the format version); anything else is chat. Signals are never shown as chat lines.
 */
export const SIGNAL_VERSION = 1;
const MARKER = '{"mlsfgCall":';
/** An SDP of a few kilobytes is normal; anything far larger is refused unread. */
const MAX_SDP = 64 * 1024;
const MAX_SIGNAL = MAX_SDP + 1024;

const callId = z.string().check(z.regex(/^[A-Za-z0-9_-]{8,64}$/));
const clientId = z.string().check(z.minLength(3), z.maxLength(320));
const sdp = z.string().check(z.minLength(1), z.maxLength(MAX_SDP));
const base = { mlsfgCall: z.literal(SIGNAL_VERSION), call: callId };

const signalSchema = z.discriminatedUnion("type", [
  /** A member started a call: the others may join it. */
  z.strictObject({ ...base, type: z.literal("start") }),
  /** A member joins: everyone already in the call sends it an offer. */
  z.strictObject({ ...base, type: z.literal("join") }),
  /** Session descriptions for one peer (`to`), with every ICE candidate (no trickle). */
  z.strictObject({ ...base, type: z.literal("offer"), to: clientId, sdp }),
  z.strictObject({ ...base, type: z.literal("answer"), to: clientId, sdp }),
  /** A member hangs up. */
  z.strictObject({ ...base, type: z.literal("leave") }),
]);

export type CallSignal = z.infer<typeof signalSchema>;
type Body<T> = T extends unknown ? Omit<T, "mlsfgCall"> : never;
export type CallSignalBody = Body<CallSignal>;

/** The application message text of a signal. */
export function encodeSignal(signal: CallSignalBody): string {
  return JSON.stringify({ mlsfgCall: SIGNAL_VERSION, ...signal });
}

export function isSignalText(text: string): boolean {
  return text.startsWith(MARKER);
}

/**
 * A signal, or undefined for text that is not one (or a malformed/oversized one, which is
 * dropped: it came from a member, but it is still untrusted input).
 */
export function parseSignal(text: string): CallSignal | undefined {
  if (!isSignalText(text) || text.length > MAX_SIGNAL) return undefined;
  try {
    const parsed = signalSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
