package redisstore

// keys names the Redis keys of one hub. Every key starts with the same hash
// tag, {prefix:hub}, so that Redis Cluster puts them in one slot and the
// store's scripts, which touch many of them at once, run there.
//
//	{prefix:hub}:id              string  newest message id (the id counter)
//	{prefix:hub}:visible         string  newest id readers may see, with min_replicas
//	{prefix:hub}:channels        zset    channel ids, scored by when they expire
//	{prefix:hub}:sessions        zset    client ids, scored by when they expire
//	{prefix:hub}:events          pub/sub "p<channel>" published, "d<channel>" deleted
//	{prefix:hub}:ch:<channel>    hash    use_sessions, max_messages
//	{prefix:hub}:msgs:<channel>  zset    message JSON, scored by message id
//	{prefix:hub}:clients:<chan>  zset    client ids that read the channel
//	{prefix:hub}:keys:<chan>     hash    idempotency key -> message id
//	{prefix:hub}:keytimes:<chan> zset    idempotency keys, scored by when used
//	{prefix:hub}:client:<client> string  a registered client's session
//
// The fixed names carry no ':' after the tag and the per-id ones do, so no id
// can make two kinds of key collide.
type keys struct {
	// base is "{prefix:hub}:", the start of every key.
	base string
}

func newKeys(prefix, hubName string) keys {
	return keys{base: "{" + prefix + ":" + hubName + "}:"}
}

func (k keys) id() string       { return k.base + "id" }
func (k keys) visible() string  { return k.base + "visible" }
func (k keys) channels() string { return k.base + "channels" }
func (k keys) sessions() string { return k.base + "sessions" }
func (k keys) events() string   { return k.base + "events" }

func (k keys) channel(id string) string  { return k.base + "ch:" + id }
func (k keys) messages(id string) string { return k.base + "msgs:" + id }
func (k keys) readers(id string) string  { return k.base + "clients:" + id }
func (k keys) client(id string) string   { return k.base + "client:" + id }

func (k keys) publishKeys(id string) string     { return k.base + "keys:" + id }
func (k keys) publishKeyTimes(id string) string { return k.base + "keytimes:" + id }
