import { encodeSignal, isSignalText, parseSignal } from "../../web/call/signal.js";
import { usableCandidates, loopbackOnly } from "../../web/call/link.js";

const call = "c4ll-1d_abcdefgh";

describe("call signals inside MLS application messages", () => {
  it("round-trips every signal type", () => {
    for (const body of [
      { type: "start", call },
      { type: "join", call },
      { type: "offer", call, to: "bob@b.example/web", sdp: "v=0\r\n" },
      { type: "answer", call, to: "alice@a.example/web", sdp: "v=0\r\n" },
      { type: "leave", call },
    ] as const) {
      const text = encodeSignal(body);
      expect(isSignalText(text)).toBe(true);
      expect(parseSignal(text)).toEqual({ mlsfgCall: 1, ...body });
    }
  });

  it("leaves chat text to the chat, even text that looks like JSON", () => {
    for (const text of ["hello", '{"type":"start"}', ' {"mlsfgCall":1,"type":"start","call":"c4ll-1d_abcdefgh"}', ""]) {
      expect(isSignalText(text)).toBe(false);
      expect(parseSignal(text)).toBeUndefined();
    }
  });

  it("refuses malformed signals: unknown type or version, extra or missing fields, bad ids, oversized SDP", () => {
    const bad = [
      '{"mlsfgCall":1,"type":"start"}',
      '{"mlsfgCall":2,"type":"start","call":"c4ll-1d_abcdefgh"}',
      '{"mlsfgCall":1,"type":"ring","call":"c4ll-1d_abcdefgh"}',
      '{"mlsfgCall":1,"type":"start","call":"c4ll-1d_abcdefgh","extra":true}',
      '{"mlsfgCall":1,"type":"start","call":"short"}',
      '{"mlsfgCall":1,"type":"start","call":"has spaces in it"}',
      '{"mlsfgCall":1,"type":"offer","call":"c4ll-1d_abcdefgh","sdp":"v=0"}',
      '{"mlsfgCall":1,"type":"offer","call":"c4ll-1d_abcdefgh","to":"b@b/x","sdp":""}',
      '{"mlsfgCall":1,"type":"join","call":"c4ll-1d_abcdefgh"',
      encodeSignal({ type: "offer", call, to: "bob@b.example/web", sdp: "x".repeat(70_000) }),
    ];
    for (const text of bad) expect(parseSignal(text)).toBeUndefined();
  });
});

describe("ICE candidates of a call", () => {
  const sdp = [
    "v=0",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    "a=candidate:2 1 udp 2122194687 192.168.1.20 50001 typ host",
    "a=candidate:3 1 udp 2122129151 ::1 50002 typ host",
    "a=candidate:4 1 udp 1686052607 203.0.113.7 50003 typ srflx raddr 0.0.0.0 rport 0",
    "a=mid:0",
  ].join("\r\n");

  it("keeps only loopback candidates for a page served from a loopback address", () => {
    const kept = usableCandidates(sdp, true).split("\r\n");
    expect(kept.filter((l) => l.startsWith("a=candidate:")).map((l) => l.split(" ")[4])).toEqual(["127.0.0.1", "::1"]);
    expect(kept).toContain("a=mid:0");
  });

  it("keeps every candidate otherwise", () => {
    expect(usableCandidates(sdp, false)).toBe(sdp);
  });

  it("treats 127.0.0.0/8, localhost and ::1 as loopback pages", () => {
    expect(["127.0.0.1", "127.3.2.1", "localhost", "[::1]"].map((h) => loopbackOnly(h))).toEqual([true, true, true, true]);
    expect(["a.example", "192.168.1.2", "127.example"].map((h) => loopbackOnly(h))).toEqual([false, false, false]);
  });
});
