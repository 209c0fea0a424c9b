# portrayal-audit in a container: installs exactly as the README does, then runs the CLI.
# (Not built in the project's own environment, which has no Docker engine.)
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir torch==2.13.0 && pip install --no-cache-dir .
ENTRYPOINT ["portrayal-audit"]
CMD ["--help"]
