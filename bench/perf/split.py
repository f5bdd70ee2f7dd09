import sys, subprocess, collections
# usage: split.py perf.data  -> share of samples by (component, user/kernel)
data = sys.argv[1]
out = subprocess.run(['perf','script','-i',data,'-F','ip,sym,dso'], capture_output=True, text=True).stdout
samples = out.split('\n\n')
c = collections.Counter(); n = 0
for s in samples:
    lines = [l.strip() for l in s.strip().split('\n') if l.strip()]
    if not lines: continue
    n += 1
    leaf = lines[0]
    kern = '[kernel' in leaf
    stack = ' '.join(lines)
    if 'Loop<P>::run' in stack: comp = 'node loop'
    elif 'poll_catch' in stack or 'handle_connection' in stack: comp = 'http connections'
    elif 'fjall' in stack or 'lsm_tree' in stack: comp = 'fjall background'
    elif 'tokio' in stack: comp = 'tokio other'
    else: comp = 'other'
    sub = ''
    if comp == 'node loop':
        for key, name in [('Store>::put','store put'),('Store>::get','store get'),('Store>::flush','journal write'),('Loop<P>::perform','perform outputs')]:
            if key in stack: sub = name; break
        else: sub = 'node logic'
    c[(comp, sub, 'kernel' if kern else 'user')] += 1
for k, v in sorted(c.items(), key=lambda kv: -kv[1]):
    print(f'{100*v/n:6.2f}%  {k[0]:18} {k[1]:16} {k[2]}')
print(n, 'samples')
