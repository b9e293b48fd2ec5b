/** Poll metrics of the mailbox agent (a metric and a log line per poll, issue "remote mailboxes"), on the server's /metrics. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AgentHooks } from '../adapters/agent.ts';

export function agentMetricsHooks(registry: Registry): Pick<AgentHooks, 'afterPoll'> {
  const labelNames = ['mailbox', 'via'] as const;
  const polls = new Counter({ name: 'amtsbote_agent_polls_total', help: 'Polls of a mailbox at its intermediary by outcome (ok, error)', labelNames: [...labelNames, 'outcome'], registers: [registry] });
  const fetched = new Counter({ name: 'amtsbote_agent_messages_stored_total', help: 'Messages fetched from an intermediary and durably stored here', labelNames, registers: [registry] });
  const failures = new Gauge({ name: 'amtsbote_agent_poll_failures_in_row', help: 'Failed polls in a row (0 after a success); the next poll backs off accordingly', labelNames, registers: [registry] });
  const lastOk = new Gauge({ name: 'amtsbote_agent_last_successful_poll_timestamp_seconds', help: 'Unix time of the last successful poll', labelNames, registers: [registry] });
  const nextIn = new Gauge({ name: 'amtsbote_agent_next_poll_seconds', help: 'Seconds from the last poll to the next one', labelNames, registers: [registry] });
  return {
    afterPoll(report, state) {
      const l = { mailbox: report.mailbox, via: report.via };
      polls.inc({ ...l, outcome: report.error ? 'error' : 'ok' });
      fetched.inc(l, report.stored.length);
      failures.set(l, state.failures);
      nextIn.set(l, state.nextPollInMs / 1000);
      if (!report.error) lastOk.set(l, Date.now() / 1000);
    },
  };
}
