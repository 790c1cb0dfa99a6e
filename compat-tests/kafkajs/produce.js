'use strict'
// Produce messages with the kafkajs producer.
//
// Settings: bootstrap, topic, messages: [{key?, value, partition?, headers?}],
// acks? (default -1), maxRuntimeMs?.
// Prints {"event":"produced","result":[{topicName, partition, errorCode, baseOffset, ...}]}
// for each message (sent one by one, so every message's offset is known), then
// {"event":"done"}.

const { emit, readConfig, makeKafka, fail } = require('./common')

async function main() {
  const cfg = readConfig()
  const kafka = makeKafka(cfg, 'gregor-compat-kafkajs-producer')
  const producer = kafka.producer({ allowAutoTopicCreation: cfg.allowAutoTopicCreation !== false })
  await producer.connect()
  emit({ event: 'connected' })
  try {
    for (const m of cfg.messages) {
      const message = { value: m.value }
      if (m.key != null) message.key = m.key
      if (m.partition != null) message.partition = m.partition
      if (m.headers) message.headers = m.headers
      const result = await producer.send({
        topic: cfg.topic,
        acks: cfg.acks != null ? cfg.acks : -1,
        messages: [message],
      })
      emit({ event: 'produced', key: m.key, value: m.value, result })
    }
  } finally {
    await producer.disconnect()
  }
  emit({ event: 'done' })
  process.exit(0)
}

main().catch(fail)
