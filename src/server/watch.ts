// Watches configuration files and folders, file:// modules and TLS secrets (--secrets-dir), and
// reports changes after a quiet period (editors and `go build` write in several steps). Files are
// watched through their folder, so a file replaced by rename (most editors, `cp`, Kubernetes
// ConfigMap and Secret volume symlink swaps) is seen.
import { type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

const QUIET_MS = 300;

export class ChangeWatcher {
  readonly #onChange: (files: string[]) => void;
  /** Folder -> its watcher, whether recursive, and the folder's inode when watched. */
  readonly #watchers = new Map<string, { watcher: FSWatcher; recursive: boolean; ino: number }>();
  /**
   * Folder -> the names in it we care about ('*' for every YAML file, '**' for every file: a
   * secret folder; both recursively).
   */
  #interest = new Map<string, Set<string>>();
  #pending = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(onChange: (files: string[]) => void) {
    this.#onChange = onChange;
  }

  /**
   * Replaces the watched set: config paths (files or folders) and module files; `secrets` are TLS
   * secrets (a folder, where every file counts, or a Secret file), existing or not yet.
   */
  set(paths: readonly string[], secrets: readonly string[] = []): void {
    if (this.#closed) return;
    const interest = new Map<string, Set<string>>();
    const add = (dir: string, name: string) => {
      let names = interest.get(dir);
      if (!names) interest.set(dir, (names = new Set()));
      names.add(name);
    };
    const each = (list: readonly string[], folder: '*' | '**') => {
      for (const p of list) {
        const abs = resolve(p);
        let isDir = false;
        try {
          isDir = statSync(abs).isDirectory();
        } catch {
          // Missing now: watch its folder so that its creation is seen.
        }
        if (isDir) add(abs, folder);
        // A secret folder is also watched from its parent: removed and made again, it is seen.
        if (!isDir || folder === '**') add(dirname(abs), basename(abs));
      }
    };
    each(paths, '*');
    each(secrets, '**');
    const recursive = (dir: string) => {
      const names = interest.get(dir);
      return names !== undefined && (names.has('*') || names.has('**'));
    };
    const inode = (dir: string) => {
      try {
        return statSync(dir).ino;
      } catch {
        return -1;
      }
    };
    for (const [dir, w] of this.#watchers) {
      // No longer wanted, now needed recursive (a secret folder) where it was not, or the folder
      // was replaced (removed and made again: the old watcher sees nothing): made again below.
      if (!interest.has(dir) || recursive(dir) !== w.recursive || inode(dir) !== w.ino) {
        w.watcher.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of interest.keys()) {
      if (this.#watchers.has(dir)) continue;
      try {
        const ino = inode(dir);
        const w = watch(dir, { recursive: recursive(dir), persistent: false }, (_event, name) => {
          // The folder itself is gone: this watcher will see nothing more, the next set() makes a new one.
          if (inode(dir) !== ino && this.#watchers.get(dir)?.watcher === w) {
            w.close();
            this.#watchers.delete(dir);
          }
          this.#event(dir, name ? String(name) : '');
        });
        w.on('error', () => {});
        this.#watchers.set(dir, { watcher: w, recursive: recursive(dir), ino });
      } catch {
        // A folder that does not exist cannot be watched; the next reload tries again.
      }
    }
    this.#interest = interest;
  }

  #event(dir: string, name: string): void {
    const names = this.#interest.get(dir);
    if (!names) return;
    const file = basename(name);
    const yaml = /\.ya?ml$/i.test(file);
    // Kubernetes ConfigMap volumes swap a `..data` symlink: treat it as a change of everything.
    const swap = file === '..data' || name.startsWith('..');
    if (!(names.has(file) || names.has('**') || (names.has('*') && (yaml || swap)))) return;
    this.#pending.add(resolve(dir, name));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const files = [...this.#pending];
      this.#pending.clear();
      if (!this.#closed) this.#onChange(files);
    }, QUIET_MS);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const w of this.#watchers.values()) w.watcher.close();
    this.#watchers.clear();
  }
}
