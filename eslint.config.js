import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", "scratch/", "*.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
      // Byte arrays compare by content (bytesEqual), never by reference.
      "no-restricted-syntax": [
        "error",
        { selector: "BinaryExpression[operator=/^[!=]==?$/] > Identifier[name=/(bytes|Bytes|Key|key)$/]", message: "compare byte arrays with bytesEqual()" },
      ],
    },
  },
);
