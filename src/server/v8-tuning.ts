// V8 settings for a proxy's heap. Imported first by the CLI, for its side effect: V8 flags are
// process-wide (the worker threads share them) and must be set before the rest of the program
// is loaded and starts allocating.
import { setFlagsFromString } from 'node:v8';

// Allocation-site pretenuring off.
//
// V8 watches how many objects from each object or array literal survive a scavenge, and when
// nearly all of them do, it recompiles the code to allocate that literal straight into the old
// generation. A proxy's literals are per request: they survive a scavenge only when requests are
// slow (JIT warm-up, a busy machine, hundreds of connections), and that is when V8 decides. From
// then on every request's objects go to the old generation and only a full mark-compact frees
// them, which feeds the slowness the decision came from. Measured with 300 connections: 4 runs in
// 11 fell into it (17 mark-compacts in 16 s instead of 3, 20 µs more V8 helper CPU per request,
// a quarter fewer requests per second); with the flag, 13 runs in 13 did not. docs/design.md
// ("Garbage collection") has the numbers.
setFlagsFromString('--no-allocation-site-pretenuring');
