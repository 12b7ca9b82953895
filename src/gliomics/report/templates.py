"""HTML templates of the reports (Jinja2 with autoescaping: every value is escaped unless marked safe).

The pages are self-contained: inline CSS, images as ``data:`` URIs, no scripts and no external resources.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 1.5em auto; max-width: 1100px;
       color: #1a1a1a; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
.caveat { background: #fff3cd; border: 2px solid #c9302c; padding: 0.7em 1em; margin: 1em 0; font-weight: bold; }
.who { background: #eef4fb; border: 1px solid #7aa7d8; padding: 0.7em 1em; margin: 1em 0; }
.who .category { font-size: 1.2em; font-weight: bold; }
.note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; border: 1px solid #ddd; }
.grid { display: flex; flex-wrap: wrap; gap: 2em; }
footer { margin-top: 2em; font-size: 0.85em; color: #555; }
"""

CASE_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gliomics report: {{ record.case_id }}</title>
<style>{{ style }}</style></head>
<body>
<h1>Case {{ record.case_id }}</h1>
<p class="note">{% if versions.gliomics is defined %}gliomics {{ versions.gliomics }} &middot; {% endif %}
model {{ model.get("name", "unknown") }}{% if model.get("checkpoint") %} ({{ model.checkpoint }}){% endif %}
 &middot; report generated {{ generated }}</p>
<div class="caveat" id="caveat">{{ caveat }}</div>

<h2>Molecular markers</h2>
{% if marker_flag %}<div class="caveat" id="marker-flag">{{ marker_flag }}</div>{% endif %}
<table id="markers"><tr><th>marker</th><th>probability</th><th>threshold</th><th>call</th>
{% if calibrated %}<th>raw probability</th><th>conformal set</th><th>rule-out call (sens. &ge; 0.95)</th>
<th>rule-in call (spec. &ge; 0.95)</th>{% endif %}</tr>
{% for m in markers %}<tr><td>{{ m.name }}</td><td class="num">{{ "%.4f"|format(m.probability) }}</td>
<td class="num">{{ "%.4f"|format(m.threshold) }}</td><td>{{ m.call }}</td>
{% if calibrated %}<td class="num">{{ m.raw }}</td><td>{{ m.set }}</td><td>{{ m.rule_out }}</td>
<td>{{ m.rule_in }}</td>{% endif %}</tr>
{% endfor %}</table>
<p class="note">A marker is called altered when its probability reaches the threshold chosen on {{ fitted_on }}
(Youden's J).{% if calibrated %} The probabilities are calibrated by temperature scaling fitted on the same cases;
the conformal set holds the true class with probability {{ coverage }} on cases like them, and holds both classes
("undetermined") when the image does not decide.{% endif %}</p>

{% if who %}<h2>WHO CNS5 (2021) suggestion</h2>
<div class="who" id="who">
<div class="category">{{ who.category }}</div>
{% if who.most_probable_candidate %}<div>Most probable candidate: {{ who.most_probable_candidate }}
(p = {{ "%.3f"|format(who.probability) }}); undecided between: {{ who.candidates|join("; ") }}</div>
{% else %}<div>Probability of this category: {{ "%.3f"|format(who.probability) }}</div>{% endif %}
<div class="note">{{ who.reason }}. Indeterminate band: ±{{ who.band }} around each threshold;
{{ who.assumption }}.</div>
<table><tr><th>category</th><th>probability</th></tr>
{% for name, p in who.category_probabilities.items() %}<tr><td>{{ name }}</td><td class="num">{{ "%.3f"|format(p) }}
</td></tr>{% endfor %}</table>
<p><strong>{{ who.caveat }}</strong></p></div>{% endif %}

<h2>Volumes</h2>
{% if volumes %}<table id="volumes"><tr><th>region</th><th>volume (mL)</th></tr>
{% for region, v in volumes.items() %}<tr><td>{{ region }}</td><td class="num">{{ "%.3f"|format(v) }}</td></tr>
{% endfor %}</table>
<p class="note">TC = NETC + ET, WT = NETC + SNFH + ET; measured on the written segmentation in the input geometry.</p>
{% else %}<p>No segmentation: this model predicts markers only.</p>{% endif %}

<h2>Sequences</h2>
<p>Present: {{ present|join(", ") or "none" }}. Missing: {{ missing|join(", ") or "none" }}.</p>
{% if cmaf_table %}<table id="cmaf"><tr><th>region</th>{% for s in cmaf_table.sequences %}<th>{{ s }}</th>{% endfor %}
</tr>{% for region, row in cmaf_table.rows.items() %}<tr><td>{{ region }}</td>{% for s in cmaf_table.sequences %}
<td class="num">{{ row.get(s, "") }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="note">Mean CMAF weight of each sequence inside each predicted region (weights sum to 1 over the sequences
present).</p>{% endif %}

<h2>Images</h2>
{% for fig in figures %}<figure><img src="{{ fig.src }}" alt="{{ fig.title }}">
<figcaption class="note">{{ fig.caption }}</figcaption></figure>
{% endfor %}
{% if maps_note %}<p class="note">{{ maps_note }}</p>{% endif %}

<h2>Timings</h2>
<table id="timings">{% for k, v in timings.items() %}<tr><td>{{ k }}</td><td class="num">{{ "%.2f"|format(v) }} s</td>
</tr>{% endfor %}</table>
<footer>Versions: {% for k, v in versions.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}.
<div class="caveat">{{ caveat }}</div></footer>
</body></html>
"""

COHORT_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gliomics cohort report</title>
<style>{{ style }}</style></head>
<body>
<h1>Cohort evaluation: {{ summary.cases }} cases</h1>
<p class="note">gliomics {{ version }} &middot; report generated {{ generated }}
{% if summary.cases_without_prediction %}&middot; {{ summary.cases_without_prediction }} reference cases had no
prediction{% endif %}</p>
<div class="caveat" id="caveat">{{ caveat }}</div>
{% if headline %}<p>{{ headline }}</p>{% endif %}

{% if markers %}<h2>Marker AUC{% if has_bayes %} and the Bayes-optimal bound{% endif %}</h2>
<table id="auc"><tr><th>marker</th><th>n (altered)</th><th>AUC [DeLong 95% CI]</th><th>bootstrap 95% CI</th>
{% if has_bayes %}<th>Bayes-optimal AUC, these cases</th><th>Bayes-optimal AUC, whole phantom cohort</th>
{% endif %}</tr>
{% for m in markers %}<tr><td>{{ m.name }}</td><td class="num">{{ m.n }} ({{ m.n_pos }})</td><td>{{ m.auc }}</td>
<td>{{ m.boot }}</td>{% if has_bayes %}<td class="num">{{ m.bayes }}</td>
<td class="num">{{ m.bayes_cohort }}</td>{% endif %}
</tr>{% endfor %}</table>
{% if has_bayes %}<p class="note">The phantom's exact posteriors give the best AUC any model can reach on these labels
(label noise included); a measured AUC above it is chance.</p>{% endif %}{% endif %}

<h2>Figures</h2>
{% for fig in figures %}<figure><img src="{{ fig.src }}" alt="{{ fig.title }}">
<figcaption class="note">{{ fig.caption }}</figcaption></figure>
{% endfor %}

<h2>Tables</h2>
{{ tables_html }}
{% for t in extra_tables %}<h2>{{ t.title }}</h2>
{{ t.html }}
{% endfor %}
<footer><div class="caveat">{{ caveat }}</div></footer>
</body></html>
"""

_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context: Any) -> str:
    """Render one of the templates above; strings are HTML-escaped unless wrapped in :class:`markupsafe.Markup`."""
    return _ENV.from_string(template).render(style=Markup(_STYLE), **context)
