// kafkajs (2.2.4; only non-flexible protocol versions) against fjord.
//
//   node kafkajs_roundtrip.js <bootstrap> <topic> <count> <base timestamp ms>
//
// Creates <topic> (3 partitions) with the admin client, produces <count> messages with keys,
// headers and explicit timestamps through an idempotent producer (half uncompressed, half gzip),
// reads the offsets back with admin.fetchTopicOffsets, and fetches every record back with
// kafkajs' own Fetch request and decoder. Prints one JSON document on stdout for the Python
// side (test_kafkajs.py) to check; exits non-zero on any kafkajs error.
//
// Reading: the records are fetched through kafkajs' internal cluster/broker objects (the same
// Fetch encoder and record-batch decoder consumer.run uses) to compare every field byte for
// byte; consumer.run with a group is exercised by kafkajs_group.js.
'use strict'

const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const [bootstrap, topic, countArg, baseTsArg] = process.argv.slice(2)
const count = parseInt(countArg || '1000', 10)
const PARTITIONS = 3
const BASE_TS = parseInt(baseTsArg || `${Date.now() - 3600000}`, 10)

function expectedMessage(i) {
  return {
    partition: i % PARTITIONS,
    key: `key-${i}`,
    value: `value-${i}-${'z'.repeat(i % 31)}`,
    headers: { 'h-index': `${i}`, 'h-client': 'kafkajs' },
    timestamp: `${BASE_TS + i}`, // message i's timestamp: message 30 is the first at BASE_TS + 30
  }
}

async function fetchAll(kafka, highWatermarks) {
  // kafkajs keeps its Cluster factory behind a private symbol; find it by its description.
  const sym = Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')
  if (!sym) throw new Error('kafkajs internals changed: no private:Kafka:createCluster symbol')
  const cluster = kafka[sym]({ allowAutoTopicCreation: false })
  await cluster.connect()
  await cluster.addTargetTopic(topic)
  const partitions = [...Array(PARTITIONS).keys()]
  const leaders = cluster.findLeaderForPartitions(topic, partitions)
  const out = {}
  for (const p of partitions) out[p] = []
  for (const [nodeId, parts] of Object.entries(leaders)) {
    const broker = await cluster.findBroker({ nodeId })
    for (const p of parts) {
      let offset = 0
      const deadline = Date.now() + 30000
      while (offset < highWatermarks[p]) {
        if (Date.now() > deadline) throw new Error(`partition ${p}: stuck at offset ${offset}`)
        const resp = await broker.fetch({
          replicaId: -1,
          isolationLevel: 0,
          maxWaitTime: 200,
          minBytes: 1,
          maxBytes: 1 << 20,
          topics: [{ topic, partitions: [{ partition: p, fetchOffset: `${offset}`, maxBytes: 1 << 20 }] }],
        })
        for (const t of resp.responses) {
          for (const part of t.partitions) {
            if (part.errorCode !== 0) throw new Error(`fetch ${topic}[${p}]@${offset}: error ${part.errorCode}`)
            for (const m of part.messages) {
              const o = parseInt(m.offset, 10)
              if (o < offset) continue // a batch may start before the fetch offset
              const headers = {}
              for (const [k, v] of Object.entries(m.headers || {})) headers[k] = v.toString()
              out[p].push({
                offset: o,
                key: m.key === null ? null : m.key.toString(),
                value: m.value === null ? null : m.value.toString(),
                headers,
                timestamp: m.timestamp,
              })
              offset = o + 1
            }
          }
        }
      }
    }
  }
  await cluster.disconnect()
  return out
}

async function main() {
  const kafka = new Kafka({ clientId: 'fjord-kafkajs', brokers: [bootstrap], logLevel: logLevel.WARN,
                            retry: { retries: 5 } })
  const result = {}

  const admin = kafka.admin()
  await admin.connect()
  result.created = await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  })
  // Creating it again reports "not created" (TOPIC_ALREADY_EXISTS is not an error for kafkajs).
  result.createdAgain = await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] })
  result.listed = (await admin.listTopics()).includes(topic)
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  result.metadata = md.topics.map(t => ({
    name: t.name,
    partitions: t.partitions.map(p => ({ id: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr }))
      .sort((a, b) => a.id - b.id),
  }))
  const cl = await admin.describeCluster()
  result.cluster = { brokers: cl.brokers.map(b => ({ nodeId: b.nodeId, host: b.host, port: b.port })),
                     controller: cl.controller }

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const all = [...Array(count).keys()].map(expectedMessage)
  const half = Math.floor(count / 2)
  result.sendResults = []
  for (const [from, to, compression] of [[0, half, CompressionTypes.None], [half, count, CompressionTypes.GZIP]]) {
    for (let i = from; i < to; i += 100) {
      const batch = all.slice(i, Math.min(i + 100, to))
      const r = await producer.send({ topic, acks: -1, compression, messages: batch })
      result.sendResults.push({ from: i, to: i + batch.length,
        results: r.map(x => ({ partition: x.partition, errorCode: x.errorCode, baseOffset: x.baseOffset })) })
    }
  }
  await producer.disconnect()

  const offsets = await admin.fetchTopicOffsets(topic)
  result.offsets = offsets.map(o => ({ partition: o.partition, low: o.low, high: o.high }))
    .sort((a, b) => a.partition - b.partition)
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + 30)
  result.offsetsByTimestamp = byTime.map(o => ({ partition: o.partition, offset: o.offset }))
    .sort((a, b) => a.partition - b.partition)

  const configs = await admin.describeConfigs({ resources: [{ type: 2, name: topic, configNames: ['cleanup.policy', 'retention.ms'] }] })
  result.configs = {}
  for (const e of configs.resources[0].configEntries) result.configs[e.configName] = e.configValue
  await admin.disconnect()

  const highs = {}
  for (const o of result.offsets) highs[o.partition] = parseInt(o.high, 10)
  result.fetched = await fetchAll(kafka, highs)

  process.stdout.write(JSON.stringify(result) + '\n')
}

main().catch(e => {
  console.error(`kafkajs_roundtrip failed: ${e && e.stack ? e.stack : e}`)
  process.exit(1)
})
