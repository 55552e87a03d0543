"""Serial scatter loops of the compiled SO3LR e+f program: every `while` of the optimised HLO with its trip count,
source line and operand shapes, and the total iterations. Usage: PYTHONPATH=. python count_loops.py water-1536"""
import sys, re, collections, jax
from benchmarks.systems import build_system
from benchmarks import jax_models
s = build_system(sys.argv[1])
b = jax_models.build(sys.argv[2] if len(sys.argv) > 2 else 'so3lr', s, 'float32')
c = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors).compile()
txt = c.as_text(); open('/tmp/lr/full_%s_%s.txt' % (s.name, jax.__version__), 'w').write(txt)
loops = collections.Counter()
for line in txt.splitlines():
    if ' while(' in line:
        n = re.search(r'known_trip_count":\{"n":"(\d+)"', line)
        src = re.search(r'source_file="[^"]*/([^"/]+)" source_line=(\d+)', line)
        shape = re.search(r'while\(\(([^)]*)\)', line)
        loops[(int(n.group(1)) if n else -1, src.group(1) + ':' + src.group(2) if src else '?', shape.group(1)[:90] if shape else '')] += 1
tot = 0
for (n, src, shp), k in sorted(loops.items(), key=lambda x: -x[0][0] * x[1]):
    print(k, n, src, shp); tot += k * max(n, 0)
print('total iterations', tot)
