FROM python:3.11-slim
# nginx holds the clients' connections in front of gunicorn (manage.py serve).
RUN apt-get update && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV WEIR_DATA_DIR=/data PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8443 8444
CMD ["python", "manage.py", "serve", "--bind", "0.0.0.0:8443"]
