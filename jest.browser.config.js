/** `npm run test:browser`: headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, one file at a time. */
import base from "./jest.config.js";

export default {
  ...base,
  testMatch: ["<rootDir>/test/browser/**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/"],
  globalSetup: undefined,
  globalTeardown: undefined,
  maxWorkers: 1,
  testTimeout: 120000,
};
