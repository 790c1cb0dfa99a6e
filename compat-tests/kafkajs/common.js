'use strict'
// Shared helpers for the kafkajs scripts that compat-tests/test_kafkajs.py runs.
//
// Every script takes one argument: a JSON object of settings (at least
// "bootstrap"), prints one JSON object per line on stdout (the test parses
// those), logs kafkajs warnings/errors to stderr, and exits by itself: at the
// latest after "maxRuntimeMs" (exit code 3, after printing {"event":"timeout"}).

// The default-partitioner notice of kafkajs 2 is noise here.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')

// kafkajs ships gzip only; the other codecs are plug-ins registered in CompressionCodecs
// (packages pinned in package.json). Snappy has kafkajs' own (pure JavaScript). The lz4 and
// zstd plug-ins kafkajs' docs name compile native addons at install time, so these two are
// adapters over libraries whose npm packages ship prebuilt binaries. Kafka's lz4 is the frame
// format.
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
const lz4 = require('lz4-napi')
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: encoder => lz4.compressFrame(encoder.buffer),
  decompress: buffer => lz4.decompressFrame(buffer),
})
const zstd = require('@mongodb-js/zstd')
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: encoder => zstd.compress(encoder.buffer),
  decompress: buffer => zstd.decompress(buffer),
})

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function errorInfo(e) {
  if (!e) return null
  return {
    name: e.name,
    type: e.type,
    code: e.code,
    message: e.message,
    retriable: e.retriable,
    cause: e.cause ? errorInfo(e.cause) : undefined,
    originalError: e.originalError ? errorInfo(e.originalError) : undefined,
  }
}

function readConfig() {
  const raw = process.argv[2]
  if (!raw) {
    process.stderr.write('usage: node <script>.js \'{"bootstrap": "127.0.0.1:9092", ...}\'\n')
    process.exit(2)
  }
  const cfg = JSON.parse(raw)
  const maxRuntimeMs = cfg.maxRuntimeMs || 45000
  // The hard upper bound of every script: nothing may hang the test suite.
  setTimeout(() => {
    emit({ event: 'timeout', afterMs: maxRuntimeMs })
    process.exit(3)
  }, maxRuntimeMs).unref()
  return cfg
}

// kafkajs logs as JSON lines on stderr (the test shows them on failure).
const stderrLogCreator = () => ({ namespace, level, label, log }) => {
  const { message, timestamp, ...extra } = log
  process.stderr.write(
    JSON.stringify({ ts: timestamp, level: label, namespace, message, ...extra }) + '\n'
  )
}

// cfg.ssl: {caFile, certFile?, keyFile?} (PEM files; true for the system CAs);
// cfg.sasl: {mechanism: plain|scram-sha-256|scram-sha-512, username, password}, or
// {mechanism: oauthbearer, token} (the token that kafkajs' oauthBearerProvider hands over).
function sslOptions(ssl) {
  if (!ssl || ssl === true) return ssl
  const fs = require('fs')
  const options = { ca: [fs.readFileSync(ssl.caFile, 'utf-8')] }
  if (ssl.certFile) options.cert = fs.readFileSync(ssl.certFile, 'utf-8')
  if (ssl.keyFile) options.key = fs.readFileSync(ssl.keyFile, 'utf-8')
  return options
}

function saslOptions(sasl) {
  if (!sasl || sasl.mechanism !== 'oauthbearer') return sasl
  const { token, ...rest } = sasl
  return { ...rest, oauthBearerProvider: async () => ({ value: token }) }
}

function makeKafka(cfg, clientId) {
  return new Kafka({
    ssl: sslOptions(cfg.ssl),
    sasl: saslOptions(cfg.sasl),
    clientId: clientId || cfg.clientId || 'gregor-compat-kafkajs',
    brokers: String(cfg.bootstrap).split(','),
    logLevel: cfg.debug ? logLevel.DEBUG : logLevel.WARN,
    logCreator: stderrLogCreator,
    connectionTimeout: cfg.connectionTimeout || 3000,
    requestTimeout: cfg.requestTimeout || 15000,
    // Small retry settings so that failures show within seconds, not minutes.
    retry: {
      retries: cfg.retries != null ? cfg.retries : 3,
      initialRetryTime: 100,
      maxRetryTime: 1000,
      factor: 0.2,
      multiplier: 2,
    },
  })
}

// A fatal error: print it as an event and exit non-zero.
function fail(e) {
  emit({ event: 'error', error: errorInfo(e) })
  process.exit(1)
}

module.exports = { emit, errorInfo, readConfig, makeKafka, fail, CompressionTypes }
