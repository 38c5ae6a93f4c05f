interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

/**
 * Gathers the items submitted during one turn of the event loop and hands them to `run` together, at most `maxBatch`
 * at a time, after the turn's I/O: every request read in that turn shares one unit of work (one Redis script call).
 * `run` answers one result per item, in order; if it fails, every item of that batch fails with its error.
 */
export class TurnBatcher<Item, Result> {
  private waiting: Waiting<Item, Result>[] = [];
  private scheduled = false;

  constructor(
    private readonly maxBatch: number,
    private readonly run: (items: Item[]) => Promise<readonly Result[]>,
  ) {}

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (let start = 0; start < waiting.length; start += this.maxBatch) {
      const batch = waiting.slice(start, start + this.maxBatch);
      this.run(batch.map((entry) => entry.item)).then(
        (results) => {
          batch.forEach((entry, index) => {
            if (index < results.length) entry.resolve(results[index] as Result);
            else entry.reject(new Error(`a batch of ${batch.length} got ${results.length} results`));
          });
        },
        (error: unknown) => {
          for (const entry of batch) entry.reject(error);
        },
      );
    }
  }
}
