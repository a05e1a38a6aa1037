/**
 * Entry of dist/installer.js: the installer with the migrations of sql/ embedded (~100 KB of SQL), loaded by
 * lazy.ts only when Install or Upgrade Schema runs.
 */
export { installSchema } from '../../core/installer';
