{#- In stack mode deltalake reads bronze from the object store with credentials from the process environment
    (they stay out of source meta, which dbt writes to target/manifest.json). Without them it falls back to the
    cloud instance-metadata endpoint and fails with an unhelpful error, so say what is missing up front. -#}
{#- table: the bronze table the calling model reads, named in the message. -#}
{% macro assert_object_store_credentials(table='bronze/telemetry') %}
  {%- if execute and target.name == 'stack' and not env_var('AWS_ACCESS_KEY_ID', '') -%}
    {{ exceptions.raise_compiler_error(
        "dbt target 'stack' reads " ~ table ~ " from " ~ env_var('SATLAKE_LAKE_URI', '(SATLAKE_LAKE_URI unset)')
        ~ " but AWS_ACCESS_KEY_ID is not set: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ~ " (the values of SATLAKE_S3_ACCESS_KEY and SATLAKE_S3_SECRET_KEY) for the dbt process"
    ) }}
  {%- endif -%}
{% endmacro %}
