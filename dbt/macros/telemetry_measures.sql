{#- The numeric readings every telemetry event carries (DESIGN.md, telemetry event). -#}
{% macro telemetry_measures() %}
  {{ return(['temp_c', 'battery_charge_pct', 'altitude_km', 'sensor1', 'sensor2', 'sensor3']) }}
{% endmacro %}

{#- var('operational_limits') as a VALUES list of (measure, lower_limit, upper_limit); a null bound is not checked. -#}
{% macro operational_limits_values() %}
  {%- set limits = var('operational_limits') -%}
  {%- set unknown = limits.keys() | reject('in', telemetry_measures()) | list -%}
  {%- if unknown -%}
    {{ exceptions.raise_compiler_error("var operational_limits names unknown measures " ~ unknown ~ ": use some of " ~ telemetry_measures()) }}
  {%- endif -%}
  {%- if not limits -%}
    {{ return("(select null::varchar, null::double, null::double where false)") }}
  {%- endif -%}
  (values
  {%- for measure, bounds in limits.items() %}
    ('{{ measure }}', {{ bounds.get('lower') if bounds.get('lower') is not none else 'null' }}::double, {{ bounds.get('upper') if bounds.get('upper') is not none else 'null' }}::double){{ ',' if not loop.last }}
  {%- endfor %}
  )
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
