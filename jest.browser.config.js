/**
 * `npm run test:browser` (builds first): headless Chromium (Debian's /usr/bin/chromium) driven by
 * playwright-core, one file at a time. No Redis: the browser tests use the memory store.
 */
import base from "./jest.config.js";

export default {
  ...base,
  testMatch: ["<rootDir>/test/browser/**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/"],
  globalSetup: undefined,
  globalTeardown: undefined,
  maxWorkers: 1,
  testTimeout: 180000,
};
