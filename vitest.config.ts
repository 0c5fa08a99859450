import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'build/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests spawn real processes (fake qemu, fake kernel make); keep the 2-core machine responsive.
    maxWorkers: 2,
  },
});
