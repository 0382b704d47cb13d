{#- Incremental strategy 'replace_window': delete every row of the window, then insert the window's new rows,
    in the model's transaction. Unlike delete+insert on a unique key it also removes rows whose key has vanished
    from the new build (a day that no longer has anomalies, a satellite that no longer reports), so re-running a
    window leaves exactly what a first run would. -#}
{% macro get_incremental_replace_window_sql(arg_dict) %}
  {%- set target = arg_dict['target_relation'] -%}
  {%- set source = arg_dict['temp_relation'] -%}
  {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
  delete from {{ target }} where {{ in_window() }};
  insert into {{ target }} ({{ columns }})
  select {{ columns }} from {{ source }}
{% endmacro %}
