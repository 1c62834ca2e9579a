// What an HTTP stream and a TCP connection share as a plugin's stream context: the context is
// created on first use, guest calls are made in it, and failStrategy answers a plugin that cannot
// serve or that trapped (FAIL_OPEN: skipped from then on; FAIL_CLOSE: the stream is rejected).
import { BaseContext } from '../host/context.ts';
import type { PluginVm } from '../host/plugin-vm.ts';
import type { PluginHandle } from './http-filter.ts';

export abstract class PluginStreamContext extends BaseContext {
  protected readonly plugin: PluginHandle;
  protected pluginVm: PluginVm | undefined;
  protected created = false;
  /** Set once failStrategy took the plugin out of this stream. */
  protected skip = false;

  constructor(plugin: PluginHandle) {
    super(0, 0);
    this.plugin = plugin;
  }

  /** FAIL_CLOSE: answer the request with 503, or close the connection. */
  protected abstract reject(): void;

  /** FAIL_OPEN after a trap outside this stream's callbacks: let the paused stream go on. */
  protected abstract resume(): void;

  /** Creates the context on first use; false when the plugin is unusable (failStrategy applied). */
  protected ensure(): boolean {
    if (this.skip) return false;
    if (this.created) return true;
    const vm = this.plugin.acquire();
    if (!vm) return this.fail();
    this.pluginVm = vm;
    this.id = vm.newContextId();
    this.rootId = vm.root.id;
    vm.register(this);
    this.created = true;
    return this.call('proxy_on_context_create', this.id, this.rootId) !== undefined;
  }

  /** Applies failStrategy inside a callback; always false (the plugin does not serve this stream). */
  protected fail(): boolean {
    this.skip = true;
    if (this.plugin.failOpen) {
      this.plugin.skipped();
      return false;
    }
    this.plugin.rejected();
    this.reject();
    return false;
  }

  /** A guest call in this context; undefined when it trapped (failStrategy applied). */
  protected call(name: string, ...args: number[]): number | undefined {
    try {
      return this.pluginVm!.callIn(this, name, ...args);
    } catch (err) {
      this.plugin.trapped(err as Error);
      this.fail();
      return undefined;
    }
  }

  /** A callback delivered outside this stream's own callbacks (e.g. a callout response) trapped. */
  onTrap(err: Error): void {
    this.plugin.trapped(err);
    this.skip = true;
    if (this.plugin.failOpen) {
      this.plugin.skipped();
      this.resume();
    } else {
      this.plugin.rejected();
      this.reject();
    }
  }
}
