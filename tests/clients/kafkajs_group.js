// kafkajs (2.2.4) consumer groups against fjord.
//
//   node kafkajs_group.js <bootstrap> <topic> <group>
//
// Three consumers in one group on a 6-partition topic: their assignments (from kafkajs'
// GROUP_JOIN events) must split the partitions; one leaves and the other two take over; the
// offsets they auto-commit are read with admin.fetchOffsets; a fresh consumer in the same group
// then resumes after them. Prints one JSON document for test_kafkajs.py; exits non-zero on any
// error or timeout. kafkajs has no static membership (group.instance.id), so that is tested with
// the other clients only.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, group] = process.argv.slice(2)
const PARTITIONS = 6
const PER_PARTITION = 50

const kafka = new Kafka({ clientId: 'fjord-js-group', brokers: [bootstrap], logLevel: logLevel.ERROR })
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor(what, condition, ms) {
  const start = Date.now()
  while (Date.now() - start < ms) {
    if (await condition()) return Date.now() - start
    await sleep(50)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

async function produceRound(round) {
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let partition = 0; partition < PARTITIONS; partition++) {
    for (let i = 0; i < PER_PARTITION; i++) messages.push({ partition, key: `k${i}`, value: `r${round}-p${partition}-${i}` })
  }
  await producer.send({ topic, messages })
  await producer.disconnect()
}

function member(name, seen) {
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 300, maxWaitTimeInMs: 100 })
  const m = { name, consumer, assignment: null }
  consumer.on(consumer.events.GROUP_JOIN, e => {
    m.assignment = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
  })
  m.start = async () => {
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      autoCommitInterval: 100,
      eachMessage: async ({ partition, message }) => { seen.add(`${partition}:${message.offset}`) },
    })
  }
  return m
}

function splits(members) {
  const all = members.map(m => m.assignment)
  if (all.some(a => !a || a.length === 0)) return false
  const flat = all.flat().sort((a, b) => a - b)
  return JSON.stringify(flat) === JSON.stringify([...Array(PARTITIONS).keys()])
}

async function committed(admin) {
  const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  return t.partitions.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition)
}

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true })
  await produceRound(0)

  const seen = new Set()
  const members = ['a', 'b', 'c'].map(name => member(name, seen))
  for (const m of members) await m.start()
  await waitFor('three members splitting the partitions', () => splits(members), 60000)
  const split = Object.fromEntries(members.map(m => [m.name, m.assignment]))
  await waitFor('the first round consumed', () => seen.size >= PARTITIONS * PER_PARTITION, 60000)

  // One member leaves (kafkajs sends LeaveGroup); the other two take its partitions.
  await members[0].consumer.disconnect()
  const survivors = members.slice(1)
  await produceRound(1)
  const takeoverMs = await waitFor('the survivors covering every partition', () => splits(survivors), 60000)
  await waitFor('both rounds consumed', () => seen.size >= 2 * PARTITIONS * PER_PARTITION, 60000)
  const want = JSON.stringify([...Array(PARTITIONS).keys()].map(p => ({ partition: p, offset: `${2 * PER_PARTITION}` })))
  await waitFor('offsets committed', async () => JSON.stringify(await committed(admin)) === want, 30000)
  const committedOffsets = await committed(admin)
  for (const m of survivors) await m.consumer.disconnect()
  const described = await admin.describeGroups([group])

  // A new consumer in the group resumes after the committed offsets.
  await produceRound(2)
  const resumedSeen = new Set()
  const fresh = member('d', resumedSeen)
  await fresh.start()
  await waitFor('the third round consumed', () => resumedSeen.size >= PARTITIONS * PER_PARTITION, 60000)
  await fresh.consumer.disconnect()
  const resumedOffsets = [...resumedSeen].map(s => parseInt(s.split(':')[1], 10))
  await admin.disconnect()

  process.stdout.write(JSON.stringify({
    split,
    takeoverMs,
    consumed: seen.size,
    committed: committedOffsets,
    stateAfterLeaving: described.groups[0].state,
    resumedCount: resumedSeen.size,
    resumedMinOffset: Math.min(...resumedOffsets),
  }))
}

main().then(() => process.exit(0)).catch(e => {
  process.stderr.write(`kafkajs_group.js failed: ${e && e.stack || e}\n`)
  process.exit(1)
})
