/** The heavy fault tests (`npm run test:faults`): real processes killed and restarted, one file at a time. */
import base from "./jest.config.js";

export default {
  ...base,
  testMatch: ["<rootDir>/test/faults/**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/"],
  // They kill and restart servers and measure recovery: never two at once on a small machine.
  maxWorkers: 1,
  testTimeout: 300000,
};
