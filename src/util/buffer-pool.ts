// Large I/O buffers lent and taken back, so a byte path that copies hundreds of MB/s reuses a bounded set
// of buffers instead of leaving one dead buffer per chunk for the garbage collector.

export class BufferPool {
  private readonly idle: Buffer[] = [];
  private lent = 0;

  /**
   * @param chunkSize bytes per buffer
   * @param maxLent buffers out at once; past it tryAcquire() says no, which bounds the pool's memory
   * @param maxIdle buffers kept for reuse when returned; the rest are left to the collector
   */
  constructor(
    readonly chunkSize: number,
    private readonly maxLent: number,
    private readonly maxIdle: number,
  ) {}

  /** A buffer of chunkSize bytes (old contents), or undefined when maxLent are out. */
  tryAcquire(): Buffer | undefined {
    if (this.lent >= this.maxLent) return undefined;
    this.lent++;
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(this.chunkSize);
  }

  /** Takes a buffer back for reuse: only once nothing (a pending socket write) can still read it. */
  release(buffer: Buffer): void {
    this.lent--;
    if (this.idle.length < this.maxIdle) this.idle.push(buffer);
  }

  /** Counts a lent buffer as returned without reusing it: whoever may still hold it keeps it alive. */
  forget(): void {
    this.lent--;
  }

  get lentCount(): number {
    return this.lent;
  }

  get idleCount(): number {
    return this.idle.length;
  }
}
