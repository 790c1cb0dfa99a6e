'use strict'
// A kafkajs group consumer: subscribe + run({eachMessage}).
//
// Settings: bootstrap, ssl?, sasl? (see common.js), topic, group, fromBeginning? (default true),
// autoCommit? (default true), sessionTimeout?, rebalanceTimeout?,
// heartbeatInterval?, maxWaitTimeInMs?, maxRuntimeMs?.
//
// Prints JSON lines:
//   {"event":"connected"} / {"event":"running"}
//   {"event":"assigned","partitions":[..],"memberId":..,"leaderId":..,"isLeader":..}
//   {"event":"message","partition":p,"offset":"o","key":..,"value":..}
//   {"event":"committed","topics":[{topic, partitions:[{partition, offset}]}]}
//   {"event":"rebalancing"} / {"event":"crash","error":..}
//   {"event":"disconnected"} after a clean stop.
// Stops cleanly (consumer.disconnect(), which leaves the group) when stdin
// gets the line "stop" or is closed; exits by itself after maxRuntimeMs.

const readline = require('readline')
const { emit, errorInfo, readConfig, makeKafka, fail } = require('./common')

async function main() {
  const cfg = readConfig()
  const kafka = makeKafka(cfg, cfg.clientId || 'gregor-compat-kafkajs-consumer')
  const consumer = kafka.consumer({
    groupId: cfg.group,
    sessionTimeout: cfg.sessionTimeout || 10000,
    rebalanceTimeout: cfg.rebalanceTimeout || 10000,
    heartbeatInterval: cfg.heartbeatInterval || 500,
    maxWaitTimeInMs: cfg.maxWaitTimeInMs || 200,
    retry: { retries: cfg.retries != null ? cfg.retries : 3, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  const { GROUP_JOIN, COMMIT_OFFSETS, REBALANCING, CRASH } = consumer.events
  consumer.on(GROUP_JOIN, ({ payload }) => {
    const partitions = (payload.memberAssignment[cfg.topic] || []).slice().sort((a, b) => a - b)
    emit({
      event: 'assigned',
      partitions,
      memberId: payload.memberId,
      leaderId: payload.leaderId,
      isLeader: payload.isLeader,
      groupProtocol: payload.groupProtocol,
      durationMs: payload.duration,
    })
  })
  consumer.on(COMMIT_OFFSETS, ({ payload }) => emit({ event: 'committed', topics: payload.topics }))
  consumer.on(REBALANCING, () => emit({ event: 'rebalancing' }))
  consumer.on(CRASH, ({ payload }) => {
    emit({ event: 'crash', restart: payload.restart, error: errorInfo(payload.error) })
    // kafkajs gives up on a non-retriable error: end now so the test fails fast.
    if (!payload.restart) stop('crash', 1)
  })

  let stopping = false
  const stop = async (reason, exitCode = 0) => {
    if (stopping) return
    stopping = true
    try {
      await consumer.disconnect()
      emit({ event: 'disconnected', reason })
      process.exit(exitCode)
    } catch (e) {
      fail(e)
    }
  }
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', line => {
    if (line.trim() === 'stop') stop('stop')
  })
  rl.on('close', () => stop('stdin closed'))

  await consumer.connect()
  emit({ event: 'connected' })
  await consumer.subscribe({ topics: [cfg.topic], fromBeginning: cfg.fromBeginning !== false })
  await consumer.run({
    autoCommit: cfg.autoCommit !== false,
    eachMessage: async ({ partition, message }) => {
      emit({
        event: 'message',
        partition,
        offset: message.offset,
        key: message.key == null ? null : message.key.toString(),
        value: message.value == null ? null : message.value.toString(),
      })
    },
  })
  emit({ event: 'running' })
}

main().catch(fail)
