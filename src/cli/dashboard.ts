// `lmforge dashboard [--runs runs/] [--port 8765] [--host 127.0.0.1] [--chat-url URL]`: serves the web dashboard —
// runs and their live loss curves, evaluation and ablation tables, the lineage graph, a chat page against an
// OpenAI-compatible server — until interrupted. The server: src/web/server.ts; the pages: src/web/static/.
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { Dashboard } from '../web/server.js';
import { intFlag } from './flags.js';

export function register(program: Command): void {
  program
    .command('dashboard')
    .description('web dashboard: runs with live loss curves, eval and ablation tables, lineage graph, chat against an OpenAI-compatible server')
    .option('--runs <dir>', 'folder searched for runs and studies', 'runs')
    .option('--port <n>', 'port to listen on (0 = any free port)', intFlag('--port', 0, 65535), 8765)
    .option('--host <addr>', 'address to listen on (0.0.0.0 for every interface; the dashboard has no login)', '127.0.0.1')
    .option('--chat-url <url>', "the chat page's OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1 of lmforge serve)")
    .action(async (o: { runs: string; port: number; host: string; chatUrl?: string }) => {
      if (!existsSync(o.runs) || !statSync(o.runs).isDirectory()) throw new UserError(`--runs ${o.runs}: no such folder (train a run first, or point --runs at the folder holding your runs)`);
      if (o.chatUrl !== undefined && !/^https?:\/\//.test(o.chatUrl)) throw new UserError(`--chat-url ${o.chatUrl}: expected an http:// or https:// URL`);
      const d = new Dashboard({ runsDir: o.runs, port: o.port, host: o.host, chatBaseUrl: o.chatUrl ?? null });
      const url = await d.listen();
      console.log(`dashboard: ${url}/ (runs from ${d.root}; Ctrl-C to stop)`);
      const stop = (): void => {
        void d.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
