"""The HTML report's Jinja2 template. Kept in a module (not a data file) so that it ships in every
install of the package; rendered with autoescape on, since column names and values are untrusted."""

REPORT_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Data validation {{ status | upper }}: {{ source }} ({{ date }})</title>
<style>
  :root { --error: #b91c1c; --error-bg: #fee2e2; --warning: #92400e; --warning-bg: #fef3c7;
          --ok: #166534; --ok-bg: #dcfce7; --line: #e5e7eb; --muted: #6b7280; }
  * { box-sizing: border-box; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
         color: #111827; margin: 0; padding: 24px 32px; max-width: 1200px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px;
       border-bottom: 2px solid var(--line); }
  h3 { font-size: 15px; margin: 0; overflow-wrap: anywhere; }
  .muted { color: var(--muted); }
  .status { display: inline-block; font-weight: 700; font-size: 15px; padding: 4px 14px;
            border-radius: 6px; letter-spacing: .05em; }
  .status.pass { background: var(--ok-bg); color: var(--ok); }
  .status.fail { background: var(--error-bg); color: var(--error); }
  .summary { display: flex; gap: 12px; flex-wrap: wrap; margin: 14px 0; }
  .tile { border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px; min-width: 96px; }
  .tile b { display: block; font-size: 20px; }
  .tile.error b { color: var(--error); } .tile.warning b { color: var(--warning); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; vertical-align: top; padding: 5px 8px;
           border-bottom: 1px solid var(--line); }
  th { background: #f9fafb; font-weight: 600; }
  table.facts th { width: 150px; background: none; font-weight: 600; color: var(--muted); }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px;
                overflow-wrap: anywhere; }
  .nowrap { white-space: nowrap; }
  td.colname { min-width: 9em; }
  td.value { min-width: 7em; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  .pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
          font-weight: 600; white-space: nowrap; }
  .pill.error { background: var(--error-bg); color: var(--error); }
  .pill.warning { background: var(--warning-bg); color: var(--warning); }
  .pill.ok { background: var(--ok-bg); color: var(--ok); }
  .columns { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr));
             gap: 14px; }
  .card { border: 1px solid var(--line); border-radius: 8px; padding: 12px; break-inside: avoid;
          page-break-inside: avoid; }
  .card.error { border-left: 4px solid var(--error); }
  .card.warning { border-left: 4px solid #d97706; }
  .card header { display: flex; justify-content: space-between; align-items: baseline; gap: 8px; }
  .card img { width: 100%; max-width: 640px; height: auto; margin-top: 8px; }
  .card table td, .card table th { padding: 2px 6px; font-size: 12px; }
  .card ul { margin: 6px 0 0; padding-left: 18px; font-size: 13px; }
  @page { size: A4; margin: 12mm; }
  @media print { body { padding: 0; font-size: 12px; } .columns { display: block; }
                 .card { margin-bottom: 10px; } .card img { width: 82%; } }
</style>
</head>
<body>
<header>
  <h1>Data validation report <span class="status {{ status }}">{{ status | upper }}</span></h1>
  <div class="muted">{{ source }} &middot; data date {{ date }}</div>
</header>
<div class="summary">
  <div class="tile"><b>{{ "{:,}".format(row_count) }}</b>rows</div>
  <div class="tile"><b>{{ column_count }}</b>columns</div>
  <div class="tile error"><b>{{ counts.error }}</b>errors</div>
  <div class="tile warning"><b>{{ counts.warning }}</b>warnings</div>
  {% if drift %}<div class="tile"><b>{{ drifted }}</b>drifted columns</div>{% endif %}
</div>
<p>{% if status == "pass" %}The data passed validation{% if counts.warning %}
  with {{ counts.warning }} warning(s) worth a look{% endif %}.{% else %}The data failed
  validation: the pipeline stops here until the {{ counts.error }} error(s) below are fixed
  (or the schema is updated, if the change is intended).{% endif %}</p>
<table class="facts">
  <tr><th>Source</th><td class="mono">{{ source }}</td></tr>
  <tr><th>Fingerprint</th><td class="mono">{{ fingerprint }}</td></tr>
  <tr><th>Target</th><td><span class="mono">{{ target }}</span> <span class="muted">({{ task }}
    {%- if target_facts %}: {{ target_facts }}{% endif %})</span></td></tr>
  <tr><th>Schema</th><td><span class="mono">{{ schema_uri }}</span>
    <span class="muted">({{ schema_note }})</span></td></tr>
  <tr><th>Reference</th><td>
    <span class="mono">{{ reference or "none (no drift comparison)" }}</span>
    {%- if reference_note %}<br><span class="muted">{{ reference_note }}</span>{% endif %}</td></tr>
  {% if keys %}<tr><th>Key</th><td class="mono">{{ keys | join(", ") }}</td></tr>{% endif %}
</table>

<h2>Anomalies ({{ anomalies | length }})</h2>
{% if anomalies %}
<table>
  <tr><th>Severity</th><th>Column</th><th>Check</th><th>What is wrong</th>
      <th>Expected</th><th>Observed</th></tr>
  {% for a in anomalies %}
  <tr><td><span class="pill {{ a.severity }}">{{ a.severity }}</span></td>
      <td class="mono colname">{{ a.column if a.column is not none else "(table)" }}</td>
      <td class="mono nowrap">{{ a.check }}</td><td>{{ a.description }}</td>
      <td class="mono value">{{ a.expected | compact }}</td>
      <td class="mono value">{{ a.observed | compact }}</td></tr>
  {% endfor %}
</table>
{% else %}<p><span class="pill ok">none</span> every check passed.</p>{% endif %}

{% if drift %}
<h2>Drift against the reference</h2>
<p class="muted">Population stability index (PSI) over the reference's quantile bins (numeric) or
categories, and Jensen-Shannon distance (0 = same, 1 = disjoint). PSI over
{{ thresholds.psi_warning }} is a warning, over {{ thresholds.psi_error }} an error.</p>
<table>
  <tr><th>Column</th><th>PSI</th><th>JS distance</th><th>Status</th></tr>
  {% for row in drift %}
  <tr><td class="mono colname">{{ row.column }}{% if row.target %}
        <span class="muted">(target drift)</span>{% endif %}</td>
      <td class="num">{{ "%.4f" | format(row.psi) }}</td>
      <td class="num">{{ "%.4f" | format(row.js) }}</td>
      <td>{% if row.severity %}<span class="pill {{ row.severity }}">{{ row.severity }}</span>
          {% else %}<span class="pill ok">stable</span>{% endif %}</td></tr>
  {% endfor %}
</table>
{% endif %}

<h2>Columns</h2>
{% if hidden_plots %}<p class="muted">Plots are drawn for the first {{ plotted }} columns (those
with anomalies first); {{ hidden_plots }} more have statistics only (--max-plots).</p>{% endif %}
<div class="columns">
{% for c in columns %}
  <section class="card {{ c.severity or '' }}">
    <header><h3>{{ c.name }}</h3>
      <span class="muted">{{ c.stats.type }} &middot; {{ c.stats.dtype }}{% if c.name == target %}
        &middot; {{ task }} target{% endif %}</span></header>
    {% if c.anomalies %}<ul>{% for a in c.anomalies %}
      <li><span class="pill {{ a.severity }}">{{ a.check }}</span> {{ a.description }}</li>
    {% endfor %}</ul>{% endif %}
    <table>
      <tr>{% for k, v in c.facts %}<th>{{ k }}</th>{% endfor %}</tr>
      <tr>{% for k, v in c.facts %}<td class="num">{{ v }}</td>{% endfor %}</tr>
    </table>
    {% if c.plot %}<img alt="distribution of {{ c.name }}" src="{{ c.plot }}">{% endif %}
  </section>
{% endfor %}
</div>

<h2>Thresholds</h2>
<table class="facts">
{% for k, v in thresholds.items() %}
  <tr><th>{{ k }}</th><td class="mono">{{ v }}</td></tr>
{% endfor %}
</table>
</body>
</html>
"""
