"""The dashboard's logic; app.py is its Streamlit layout and holds its caching.

`runs` finds run directories, their status and their results (through `RunDirectory`), `figures`
draws them with plotly, `launch` starts a run as a background `cascade run` process. Nothing here
imports Streamlit, torch or Ray, and nothing here trains.
"""
