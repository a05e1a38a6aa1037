/**
 * Entry of dist/commands.js: what the commands do and the task panel, loaded by lazy.ts when the first command
 * runs or the first panel opens. activate() registers every command with a stand-in that makes the real
 * handler then (src/extension/extension.ts); TaskPanels (taskPanel.ts) makes each TaskPanel from here.
 */
export { runInBackground } from '../commands/run';
export { cancelTask, collectResult, copySql, exportStep, openTask, purgeHistory, rerunTask } from '../commands/tasks';
export { addConnection, installSchemaCommand, removeConnection, setPassword } from '../commands/connection';
export { TaskPanel } from '../taskPanelView';
