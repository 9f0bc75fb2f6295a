/** ESM + TypeScript through swc; run with --experimental-vm-modules (see package.json). */
export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  transform: {
    "^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "es6" } }],
  },
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  // The heavy fault tests (Redis SIGKILL, replica kill, partitions) run by `npm run test:faults`,
  // the Chromium tests by `npm run test:browser`.
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/faults/", "<rootDir>/test/browser/"],
  globalSetup: "<rootDir>/test/helpers/global-setup.ts",
  globalTeardown: "<rootDir>/test/helpers/global-teardown.ts",
  testTimeout: 60000,
};
