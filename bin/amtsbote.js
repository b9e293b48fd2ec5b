#!/usr/bin/env node
// Runs the TypeScript sources through tsx so that the CLI and the server share one code path.
import { register } from 'tsx/esm/api';
register();
await import('../gateway/cli/main.ts');
