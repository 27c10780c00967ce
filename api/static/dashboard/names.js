/* Offer and affiliate names for the ids in the stats, read once per id with the signed-in
   key; a key that may not read a kind (403) is shown ids instead. */

export class Names {
  constructor(get) {
    this.get = get;
    this.known = { offer: new Map(), affiliate: new Map() };
    this.forbidden = new Set();
  }

  async learn(kind, ids) {
    if (this.forbidden.has(kind)) return;
    const unknown = [...new Set(ids)].filter((id) => id && !this.known[kind].has(id));
    await Promise.all(unknown.map(async (id) => {
      try {
        this.known[kind].set(id, (await this.get(`/v1/${kind}s/${id}`)).name);
      } catch (error) {
        if (error.status === 403) this.forbidden.add(kind);
        if (error.status === 404) this.known[kind].set(id, null);
        // anything else: try again on the next refresh
      }
    }));
  }

  of(kind, id, none) {
    if (id == null) return none;
    return this.known[kind].get(id) || `${id.slice(0, 8)}…`;
  }
}
