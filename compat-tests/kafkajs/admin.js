'use strict'
// Run a list of kafkajs admin calls, in order.
//
// Settings: bootstrap, ops: [{op: "listTopics", args: [...]}, ...], maxRuntimeMs?.
// For each op prints {"event":"op","op":..,"ok":true,"result":..} or
// {"event":"op","op":..,"ok":false,"error":{name,type,message,...}}; a failing op
// does not stop the later ones. Ends with {"event":"done"}.

const { emit, errorInfo, readConfig, makeKafka, fail } = require('./common')

async function main() {
  const cfg = readConfig()
  const kafka = makeKafka(cfg, 'gregor-compat-kafkajs-admin')
  const admin = kafka.admin()
  await admin.connect()
  emit({ event: 'connected' })
  try {
    for (const { op, args } of cfg.ops) {
      try {
        const result = await admin[op](...(args || []))
        emit({ event: 'op', op, ok: true, result: result === undefined ? null : result })
      } catch (e) {
        emit({ event: 'op', op, ok: false, error: errorInfo(e) })
      }
    }
  } finally {
    await admin.disconnect()
  }
  emit({ event: 'done' })
  process.exit(0)
}

main().catch(fail)
