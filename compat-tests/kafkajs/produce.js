'use strict'
// Produce messages with the kafkajs producer.
//
// Settings: bootstrap, ssl?, sasl? (see common.js), topic, messages: [{key?, value, partition?, headers?}],
// acks? (default -1), compression? ("gzip", "snappy", "lz4" or "zstd"; default none),
// batch? (default false), maxRuntimeMs?.
// One by one (so every message's offset is known), it prints
// {"event":"produced","result":[{topicName, partition, errorCode, baseOffset, ...}]} for each
// message; with batch, one send() of all messages and one "produced" event. Then {"event":"done"}.
// With acks 0 kafkajs expects no response and reports an empty result.

const { emit, readConfig, makeKafka, fail, CompressionTypes } = require('./common')

const CODECS = {
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

function toMessage(m) {
  const message = { value: m.value }
  if (m.key != null) message.key = m.key
  if (m.partition != null) message.partition = m.partition
  if (m.headers) message.headers = m.headers
  return message
}

async function main() {
  const cfg = readConfig()
  const kafka = makeKafka(cfg, 'gregor-compat-kafkajs-producer')
  const producer = kafka.producer({ allowAutoTopicCreation: cfg.allowAutoTopicCreation !== false })
  const compression = cfg.compression ? CODECS[cfg.compression] : CompressionTypes.None
  if (compression === undefined) throw new Error(`unknown compression ${cfg.compression}`)
  const send = messages => producer.send({
    topic: cfg.topic,
    acks: cfg.acks != null ? cfg.acks : -1,
    compression,
    messages: messages.map(toMessage),
  })
  await producer.connect()
  emit({ event: 'connected' })
  try {
    if (cfg.batch) {
      emit({ event: 'produced', result: await send(cfg.messages) })
    } else {
      for (const m of cfg.messages) {
        emit({ event: 'produced', key: m.key, value: m.value, result: await send([m]) })
      }
    }
  } finally {
    await producer.disconnect()
  }
  emit({ event: 'done' })
  process.exit(0)
}

main().catch(fail)
