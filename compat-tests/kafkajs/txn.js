'use strict'
// Transactions with the kafkajs producer.
//
// Settings: bootstrap, topic, transactionalId, transactions: [{values: [...], commit: bool}],
// maxRuntimeMs?. Each transaction sends its values to partition 0 and then commits or
// aborts; prints {"event":"ended","commit":...} for each, then {"event":"done"}.

const { emit, readConfig, makeKafka, fail } = require('./common')

async function main() {
  const cfg = readConfig()
  const kafka = makeKafka(cfg, 'gregor-compat-kafkajs-txn')
  const producer = kafka.producer({ transactionalId: cfg.transactionalId, idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    for (const t of cfg.transactions) {
      const txn = await producer.transaction()
      await txn.send({ topic: cfg.topic, messages: t.values.map(value => ({ value, partition: 0 })) })
      if (t.commit) await txn.commit()
      else await txn.abort()
      emit({ event: 'ended', commit: t.commit })
    }
  } finally {
    await producer.disconnect()
  }
  emit({ event: 'done' })
  process.exit(0)
}

main().catch(fail)
