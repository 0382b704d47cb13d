{#- The numeric readings every telemetry event carries (DESIGN.md, telemetry event). -#}
{% macro telemetry_measures() %}
  {{ return(['temp_c', 'battery_charge_pct', 'altitude_km', 'sensor1', 'sensor2', 'sensor3']) }}
{% endmacro %}

{#- XTCE alarm levels above normal, mildest first (satlake/telemetry/limits.py SEVERITIES). -#}
{% macro alarm_severities() %}
  {{ return(['watch', 'warning', 'distress', 'critical', 'severe']) }}
{% endmacro %}

{#- var('outlier_scale_floor') as a VALUES list of (measure, scale_floor); every measure needs a floor. -#}
{% macro outlier_scale_floor_values() %}
  {%- set floors = var('outlier_scale_floor') -%}
  {%- set missing = telemetry_measures() | reject('in', floors.keys() | list) | list -%}
  {%- set not_positive = floors.items() | selectattr(1, 'le', 0) | map(attribute=0) | list -%}
  {%- if missing or not_positive -%}
    {{ exceptions.raise_compiler_error("var outlier_scale_floor has no positive floor for " ~ (missing + not_positive) ~ ": give every measure of " ~ telemetry_measures() ~ " a positive floor") }}
  {%- endif -%}
  (values
  {%- for measure in telemetry_measures() %}
    ('{{ measure }}', {{ floors[measure] }}::double){{ ',' if not loop.last }}
  {%- endfor %}
  )
{% endmacro %}
