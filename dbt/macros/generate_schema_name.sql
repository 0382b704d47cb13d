{#- Models land in the schema named after their lakehouse zone ('silver', 'gold'), not dbt's default
    '<target schema>_<zone>', so DuckDB's silver.telemetry_clean maps one to one onto lake/silver/telemetry_clean. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {{- (custom_schema_name or target.schema) | trim -}}
{%- endmacro %}
